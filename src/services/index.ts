import { systemClock, type Clock } from '../clock.js';
import type { Config } from '../config/index.js';
import { ConfigError } from '../config/load.js';
import { PasswordHasher } from '../crypto/passwords.js';
import { createDelivery, deliverySecret, type Delivery, type Outbox, type Templates } from '../delivery/index.js';
import type { EmailConfig } from '../config/sections/email.js';
import { NotificationMailer } from './push/email-mail.js';
import { EmailNotifier } from './push/email-notifier.js';
import { EmailUnsubscribe } from './push/unsubscribe.js';
import type { Db } from '../storage/db.js';
import { Store } from '../storage/index.js';
import { AccountService } from './accounts.js';
import { AccountDataService } from './account-data.js';
import { registerDeviceHooks } from './e2ee/index.js';
import { E2eKeyService } from './e2ee/e2e-keys.js';
import { KeyBackupService } from './e2ee/key-backup.js';
import { ToDeviceService } from './e2ee/to-device.js';
import { PresenceService } from './presence.js';
import { PushRuleService } from './push-rules/push-rules.js';
import { PusherService } from './push/pushers.js';
import { pushGatewayChannel } from './push/gateway.js';
import { PushEvaluator } from './push/evaluator.js';
import { PUSH_CHANNEL, PushProcessor } from './push/processor.js';
import { PushRuleCache } from './push/rule-cache.js';
import { NotificationService } from './push/notifications.js';
import { SUPPORTED_ROOM_VERSIONS } from './rooms/pdu.js';
import { ClientEventSerializer } from './rooms/client-event.js';
import { RelationReadService } from './rooms/relation-reads.js';
import { ThirdPartyInvites } from './rooms/third-party-invites.js';
import { EventCreator } from './rooms/event-creator.js';
import { serverEventSigner } from './rooms/event-signer.js';
import { RoomReadService } from './rooms/room-reads.js';
import { SearchService } from './rooms/search.js';
import { RoomService } from './rooms/rooms.js';
import { RoomUpgrader } from './rooms/room-upgrade.js';
import { UpgradeUserState } from './rooms/upgrade-user-state.js';
import { ReportService } from './reports.js';
import { ProfilePropagation } from './rooms/profile-propagation.js';
import { ProfileService } from './profile.js';
import { RoomDirectoryService } from './directory/room-directory.js';
import { UserDirectoryService } from './directory/user-directory.js';
import { loadSigningKeys, type ServerSigningKey } from './rooms/signing-key.js';
import { FilterService } from './sync/filters.js';
import { createNotifier } from './sync/index.js';
import type { Notifier } from './sync/notifier.js';
import { StreamWriter } from './sync/stream-writer.js';
import { SyncService } from './sync/sync.js';
import { RoomsSync } from './sync/rooms-sync.js';
import { LazyMembersCache } from './sync/lazy-members.js';
import { EphemeralSync } from './sync/ephemeral.js';
import { LegacyEventsService } from './sync/legacy-events.js';
import { RoomMemberships } from './sync/room-memberships.js';
import { ReceiptService } from './ephemeral/receipts.js';
import { RoomTagService } from './ephemeral/room-tags.js';
import { TypingService } from './ephemeral/typing.js';
import { LoginService } from './login.js';
import { PasswordResetService } from './password-reset.js';
import { RateLimiter } from './ratelimiter.js';
import { RegistrationService } from './registration.js';
import { DeviceService } from './devices.js';
import { createTokenCache } from './token-cache.js';
import { DummyStage } from './stages/dummy.js';
import { PasswordStage } from './stages/password.js';
import { EMAIL_STAGE, createThreepidServices, registrationConfigProblem, registrationFlows as threepidRegistrationFlows, type ThreepidServices } from './threepid/index.js';
import { UiaService } from './uia.js';
import { MSISDN_STAGE } from './threepid/msisdn.js';
import { AdminServices } from './admin/index.js';
import { RegistrationTokenService, withRegistrationToken } from './admin/registration-tokens.js';
import { Admission } from '../http/admission.js';
import { RegistrationTokenStage } from './stages/registration-token.js';
import { FileStore, MediaService, UrlPreviewService, mediaStorePath } from './media/index.js';

/** How many costly write handlers start in one turn of the event loop (http/admission.ts). */
const COSTLY_STARTS_PER_TURN = 4;
/**
 * SQLite: room writes let through to its one connection at once, of one room too; those queued there
 * share a commit. On the 50-connection send loads, 10 beat 5 (957 vs 750 sends/s across rooms, 391 vs
 * 290 into one room) and 20 or 50 (no faster, and a waiting /sync answered later behind the queue).
 */
const SQLITE_QUEUED_WRITES = 10;

/** Every domain service of one homeserver process, wired together. */
export interface Services {
  config: Config;
  clock: Clock;
  store: Store;
  limiter: RateLimiter;
  /** The bound on costly write handlers running at once (routes marked `costly`). */
  admission: Admission;
  uia: UiaService;
  /** Devices and their access and refresh tokens. */
  devices: DeviceService;
  accounts: AccountService;
  /** Profile reads (with their lookup limits) and changes. */
  profiles: ProfileService;
  /** Writes profile changes into the users' rooms, in the background (start it with `start`). */
  profilePropagation: ProfilePropagation;
  login: LoginService;
  registration: RegistrationService;
  passwordReset: PasswordResetService;
  publicBaseUrl: string;
  /** Queue a mail (or SMS) here; it is sent by the delivery worker. */
  outbox: Outbox;
  /** Mail and page templates (renderPage for the pages links open). */
  templates: Templates;
  delivery: Delivery;
  /** Validation sessions, email and phone number (SMS) verification, and the 3PIDs of accounts. */
  threepid: ThreepidServices;
  /** Wakes waiting syncs when what they report changes. */
  notifier: Notifier;
  sync: SyncService;
  /** The deprecated event stream and snapshots: GET /events, /initialSync, /rooms/{roomId}/initialSync, /events/{eventId}. */
  legacyEvents: LegacyEventsService;
  filters: FilterService;
  pushRules: PushRuleService;
  /** Pushers (POST /pushers/set); deleted with the device that set them. */
  pushers: PusherService;
  /** Evaluates new room events against members' push rules; queues pushes, counts notifications. */
  push: PushProcessor;
  /** With email.enable_notifs: email pushers' mails, and their unsubscribe links. */
  emailNotifs: { notifier: EmailNotifier; unsubscribe: EmailUnsubscribe } | undefined;
  /** GET /notifications. */
  notifications: NotificationService;
  accountData: AccountDataService;
  /** Read receipts and the fully-read marker. */
  receipts: ReceiptService;
  /** Typing notifications (start its expiry sweeps with `start`). */
  typing: TypingService;
  /** Room tags (m.tag room account data). */
  roomTags: RoomTagService;
  /** Device and cross-signing keys, one-time and fallback keys, signatures. */
  keys: E2eKeyService;
  toDevice: ToDeviceService;
  keyBackup: KeyBackupService;
  presence: PresenceService;
  unstableFeatures: Record<string, boolean>;
  /** Writes events into rooms (one room at a time, signed, authorised). */
  eventCreator: EventCreator;
  /** Serves stored events in the client format. */
  eventSerializer: ClientEventSerializer;
  /** Room creation, membership, messages, state, aliases. */
  rooms: RoomService;
  thirdPartyInvites: ThirdPartyInvites;
  /** Reading rooms: events, state, /messages, /context, members, aliases, with history visibility. */
  roomReads: RoomReadService;
  /** POST /rooms/{roomId}/upgrade. */
  roomUpgrades: RoomUpgrader;
  /** What of a user's own state (tags, m.direct, push rules) follows them into an upgraded room's replacement. */
  upgradeUserState: UpgradeUserState;
  /** Reports of events and rooms, for the admins. */
  reports: ReportService;
  relationReads: RelationReadService;
  /** Server-side search of room events. */
  search: SearchService;
  /** The published room directory (/publicRooms, /directory/list/room). */
  roomDirectory: RoomDirectoryService;
  userDirectory: UserDirectoryService;
  /** The key this server signs events and its key answers with (the first of signingKeys; the file is read on first use). */
  signingKey: ServerSigningKey;
  /** Every key of the signing key file, all published at /_matrix/key/v2/server. */
  signingKeys: readonly ServerSigningKey[];
  /** The admin API (Synapse's), registration tokens included. */
  admin: AdminServices;
  /** The content repository: uploads, downloads, thumbnails. */
  media: MediaService;
  urlPreviews: UrlPreviewService;
  capabilities(): Record<string, unknown>;
  /** Background work (e.g. the outbox worker) to stop on shutdown. */
  stoppers: (() => Promise<void>)[];
}

export function publicBaseUrlOf(config: Config): string {
  if (config.public_baseurl) return config.public_baseurl.endsWith('/') ? config.public_baseurl : `${config.public_baseurl}/`;
  const listener = config.listeners[0]!;
  return `http://${config.server_name.includes(':') ? config.server_name : `${config.server_name}:${listener.port}`}/`;
}

function emailNotifications(email: EmailConfig, store: Store, delivery: Delivery, clock: Clock, publicBaseUrl: string, secret: string | Buffer): { notifier: EmailNotifier; unsubscribe: EmailUnsubscribe } {
  const unsubscribe = new EmailUnsubscribe(store, secret, publicBaseUrl);
  const notifier = new EmailNotifier(store, new NotificationMailer(store, email, unsubscribe), delivery.outbox, clock, email.notif_delay_before_mail);
  return { notifier, unsubscribe };
}

/** `outboxClock` times the mail and SMS queue, apart from `clock` (see delivery/worker.ts). */
export function createServices(config: Config, db: Db, clock: Clock, outboxClock: Clock = systemClock): Services {
  const store = new Store(db);
  // Read (or made) on first use: startHomeserver asks at start, register-user never does.
  let signingKeys: ServerSigningKey[] | undefined;
  const keyring = () => (signingKeys ??= loadSigningKeys(config));
  const limiter = new RateLimiter(store.rateLimits, clock);
  const uia = new UiaService(store.uia, clock, config.ui_auth_session_lifetime);
  const hasher = new PasswordHasher({
    algorithm: config.password_config.algorithm,
    bcryptRounds: config.bcrypt_rounds,
    argon2: config.password_config.argon2,
    pepper: config.password_config.pepper,
  });
  const tokenCache = createTokenCache(config, store);
  const devices = new DeviceService(store, clock, {
    refreshableAccessTokenLifetimeMs: config.refreshable_access_token_lifetime,
    refreshTokenLifetimeMs: config.refresh_token_lifetime,
    tokenCache,
  });
  const accounts = new AccountService(store, clock, config, hasher, devices);
  const login = new LoginService(store, config, accounts, devices, limiter);

  uia.register(new PasswordStage(accounts, store, limiter, config.rc_login.failed_attempts));
  uia.register(new DummyStage());

  const registrationProblem = registrationConfigProblem(config, [...(config.email ? (['email'] as const) : []), ...(config.sms ? (['msisdn'] as const) : [])]);
  if (registrationProblem) throw new ConfigError(registrationProblem);
  const registrationFlows = (): string[][] =>
    withRegistrationToken(config, threepidRegistrationFlows(config, { ...(threepid.email.enabled ? { email: EMAIL_STAGE } : {}), ...threepid.msisdn.registrationStages() }));
  const registration = new RegistrationService(config, accounts, devices, uia, limiter, registrationFlows);
  const registrationTokens = new RegistrationTokenService(store, clock, config, limiter);
  uia.register(new RegistrationTokenStage(registrationTokens));
  registration.onCompleted((work, sessionId) => registrationTokens.complete(work, sessionId));
  const passwordReset = new PasswordResetService(store, () => [...(threepid.email.enabled ? [[EMAIL_STAGE]] : []), ...(threepid.msisdn.resetEnabled ? [[MSISDN_STAGE]] : [])]);

  const delivery = createDelivery(config, store, {}, outboxClock);
  const threepid = createThreepidServices({ config, store, clock, limiter, uia, accounts, delivery, publicBaseUrl: publicBaseUrlOf(config), signingKey: () => keyring()[0]! });

  const notifier = createNotifier(config, store, tokenCache);
  const writer = new StreamWriter(store, notifier);
  const filters = new FilterService(store);
  const pushRules = new PushRuleService(store, writer);
  const keys = new E2eKeyService(store, writer, uia, config.server_name);
  const presence = new PresenceService(store, writer, clock);
  registerDeviceHooks(devices, keys, notifier);
  const eventSigner = serverEventSigner(config.server_name, {
    get keyId() {
      return keyring()[0]!.keyId;
    },
    sign: (data) => keyring()[0]!.sign(data),
  });
  // Room writes take at most half of a PostgreSQL pool, leaving the rest to everything else. SQLite's
  // one connection orders them itself, and writes queued there share a commit (SqliteGroupCommit),
  // those of one room too.
  const concurrentWrites =
    'cp_max' in config.database.args ? { all: Math.max(1, Math.floor(config.database.args.cp_max / 2)) } : { all: SQLITE_QUEUED_WRITES, perRoom: SQLITE_QUEUED_WRITES };
  const eventCreator = new EventCreator(store, notifier, eventSigner, clock, concurrentWrites);
  const eventSerializer = new ClientEventSerializer(store);
  const typing = new TypingService(store, writer, clock);
  const roomReads = new RoomReadService(store, eventSerializer, clock);
  const rooms = new RoomService(store, eventCreator, clock, config, limiter);
  // As Synapse does: a deactivated account leaves every room, and its pending invites are rejected.
  accounts.onDeactivated((userId) => rooms.leaveAll(userId));
  const profilePropagation = new ProfilePropagation(store, rooms, clock);
  const pushers = new PusherService(store, clock);
  devices.deviceDeletionHooks.push((work, userId, deviceIds) => work.pushers.deleteForDevices(userId, deviceIds));
  delivery.addChannel(PUSH_CHANNEL, pushGatewayChannel(store));
  const receipts = new ReceiptService(store, writer, clock);
  notifier.listen(receipts.changes);
  // A read receipt (unthreaded, main timeline or a thread) recounts the room's counts, at its
  // position: on PostgreSQL in the receipt's own round trip, under the position's lock for no longer.
  if (store.db.engine === 'postgres') receipts.onReceiptStatement((receipt) => store.push.recountAfterReceiptSqlPg(receipt));
  else receipts.onReceipt((tx, receipt) => tx.push.recount(receipt.user_id, receipt.room_id, Number(receipt.stream_pos), receipt.thread_id));
  const pushRuleCache = new PushRuleCache(store);
  pushRules.changed.push((userId) => pushRuleCache.forget(userId));
  const pushEvaluator = new PushEvaluator(pushRuleCache, config.server_name, clock);
  eventCreator.eventHooks.push(pushEvaluator.hook);
  const push = new PushProcessor(store, pushRuleCache, outboxClock, clock, () => delivery.worker.poke());
  eventCreator.afterPersist.push(() => push.poke());
  receipts.moved.push((userId, position) => void push.badgeUpdate(userId, position));
  const roomDirectory = new RoomDirectoryService(store, config);
  const upgradeUserState = new UpgradeUserState(store, writer, pushRules);
  rooms.joinedReplacement.push((userId, roomId, predecessorId) => upgradeUserState.copyOnJoin(userId, roomId, predecessorId));
  const emailNotifs = config.email?.enable_notifs ? emailNotifications(config.email, store, delivery, clock, publicBaseUrlOf(config), deliverySecret(config)) : undefined;
  if (emailNotifs) {
    pushEvaluator.onNotifying.push(() => emailNotifs.notifier.poke());
    if (config.email?.notif_for_new_users) {
      registration.onSignedIn(async (work, userId, deviceId, threepids) => {
        for (const t of threepids) if (t.medium === 'email') await pushers.addForNewUser(work, userId, deviceId, t.address);
      });
    }
  }
  const ephemeralSync = new EphemeralSync(store, typing, clock);
  const admin = new AdminServices(store, clock, config, accounts, devices, rooms, threepid.identity, registrationTokens, profilePropagation);
  const media = new MediaService(store, new FileStore(mediaStorePath(config)), config, clock, limiter);

  const services: Services = {
    config,
    clock,
    store,
    limiter,
    uia,
    devices,
    accounts,
    profiles: new ProfileService(store, config, accounts, profilePropagation),
    profilePropagation,
    login,
    registration,
    passwordReset,
    publicBaseUrl: publicBaseUrlOf(config),
    outbox: delivery.outbox,
    templates: delivery.templates,
    delivery,
    threepid,
    notifier,
    sync: new SyncService(store, notifier, filters, pushRules, presence, new RoomsSync(store, eventSerializer, new LazyMembersCache(), () => clock.now(), ephemeralSync)),
    legacyEvents: new LegacyEventsService(store, notifier, eventSerializer, roomReads, new RoomMemberships(store), ephemeralSync, presence, clock),
    filters,
    pushRules,
    pushers,
    push,
    emailNotifs,
    notifications: new NotificationService(store, eventSerializer, clock),
    accountData: new AccountDataService(store, writer, pushRules),
    receipts,
    typing,
    roomTags: new RoomTagService(store, writer),
    keys,
    toDevice: new ToDeviceService(writer, clock, config.server_name),
    keyBackup: new KeyBackupService(store),
    presence,
    unstableFeatures: {},
    eventCreator,
    eventSerializer,
    rooms,
    thirdPartyInvites: new ThirdPartyInvites(store, eventCreator, rooms, limiter, config),
    roomReads,
    relationReads: new RelationReadService(store, roomReads, eventSerializer, clock),
    search: new SearchService(store, roomReads, eventSerializer, clock),
    roomDirectory,
    roomUpgrades: new RoomUpgrader(store, rooms, eventCreator, roomDirectory, limiter, config, clock, upgradeUserState),
    upgradeUserState,
    reports: new ReportService(store, roomReads, limiter, clock, config),
    userDirectory: new UserDirectoryService(store, config),
    get signingKey() {
      return keyring()[0]!;
    },
    get signingKeys() {
      return keyring();
    },
    admin,
    media,
    urlPreviews: new UrlPreviewService(media, config, clock, limiter),
    capabilities: () => ({
      'm.change_password': { enabled: accounts.passwordsEnabled() },
      'm.set_displayname': { enabled: true },
      'm.set_avatar_url': { enabled: true },
      'm.3pid_changes': { enabled: config.enable_3pid_changes },
      'm.get_login_token': { enabled: false },
      'm.room_versions': { default: config.default_room_version, available: Object.fromEntries(SUPPORTED_ROOM_VERSIONS.map((v) => [v, 'stable'])) },
    }),
    admission: new Admission(COSTLY_STARTS_PER_TURN),
    stoppers: [],
  };
  // Before the notifier's LISTEN connection closes: the other processes learn this one stopped.
  if (tokenCache) services.stoppers.push(() => tokenCache.close());
  services.stoppers.push(() => notifier.close());
  return services;
}
