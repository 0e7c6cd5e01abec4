import type { Clock } from '../clock.js';
import type { Config } from '../config/index.js';
import type { PasswordHasher } from '../crypto/passwords.js';
import { MatrixError, forbidden, notFound } from '../errors.js';
import type { Store } from '../storage/index.js';
import type { UserThreepidRow } from '../storage/threepids.js';
import type { IssuedTokens, DeviceService } from './devices.js';

const LOCALPART = /^[a-z0-9._=\-/+]+$/;
const MAX_USER_ID_LENGTH = 255;
export const MAX_DISPLAYNAME_LENGTH = 256;
export const MAX_AVATAR_URL_LENGTH = 1000;

export interface NewThreepid {
  medium: string;
  address: string;
  validated_ts: number;
}

export interface RegisterArgs {
  localpart?: string;
  password?: string;
  /** Instead of `password`: its hash, made earlier (e.g. kept by a UIA session). */
  passwordHash?: string;
  guest: boolean;
  deviceId?: string;
  displayName?: string;
  inhibitLogin: boolean;
  refresh: boolean;
  ip: string;
  threepids?: NewThreepid[];
  /** More of the new account (e.g. admin, profile), written in its creating transaction. */
  onCreated?: (work: Store, userId: string) => Promise<void>;
  /** Runs once the first device is signed in (not with inhibitLogin), in the creating transaction. */
  onSignedIn?: (work: Store, userId: string, deviceId: string) => Promise<void>;
}

/** What every user row of one registration is created with. */
interface NewUser {
  hash: string | null;
  guest: boolean;
  threepids: NewThreepid[];
  now: number;
  onCreated?: ((work: Store, userId: string) => Promise<void>) | undefined;
}

export type RegisterResult = { user_id: string } & Partial<IssuedTokens>;

/** What deactivation does at identity servers (threepid/identity-unbind.ts), set when the 3PID services are made. */
export interface DeactivationUnbinder {
  /**
   * Before the transaction (calls identity servers, bounded in time), reading through `store` (a
   * caller's transaction, when deactivation runs in one); throws for an `idServer` that may not be called.
   */
  prepareDeactivation(store: Store, userId: string, idServer: string | undefined): Promise<{
    /** In the transaction, with the 3PIDs it removed: the spec's id_server_unbind_result. */
    finish(tx: Store, removed: readonly UserThreepidRow[]): Promise<'success' | 'no-support'>;
  }>;
}

export interface DeactivationResult {
  /** The 3PIDs the account had. */
  threepids: UserThreepidRow[];
  /** 'success' when every bound address was unbound at its identity server (or there was none). */
  id_server_unbind_result: 'success' | 'no-support';
}

/** Users: who may exist, their passwords, their profile, and the end of their account. */
export class AccountService {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly config: Config,
    private readonly hasher: PasswordHasher,
    private readonly devices: DeviceService,
  ) {}

  /** This service working in `work`, a caller's transaction: its writes commit or roll back with the caller's. */
  within(work: Store): AccountService {
    if (work === this.store) return this;
    const scoped = new AccountService(work, this.clock, this.config, this.hasher, this.devices.within(work));
    scoped.unbinder = this.unbinder;
    return scoped;
  }

  private unbinder: DeactivationUnbinder | undefined;

  /** Deactivation unbinds the account's addresses at identity servers through this. */
  useDeactivationUnbinder(unbinder: DeactivationUnbinder): void {
    this.unbinder = unbinder;
  }

  userId(localpart: string): string {
    return `@${localpart}:${this.config.server_name}`;
  }

  isLocal(userId: string): boolean {
    return userId.endsWith(`:${this.config.server_name}`) && userId.startsWith('@');
  }

  /** Lowercases and checks a requested username; throws M_INVALID_USERNAME when it cannot be one. */
  validateLocalpart(username: string): string {
    const localpart = username.toLowerCase();
    const bad = (msg: string) => new MatrixError(400, 'M_INVALID_USERNAME', msg);
    if (localpart.length === 0) throw bad('User ID cannot be empty');
    if (!LOCALPART.test(localpart)) throw bad('User ID can only contain characters a-z, 0-9, or ._=-/+');
    if (localpart.startsWith('_')) throw bad('User ID may not begin with _');
    if (/^\d+$/.test(localpart)) throw bad('Numeric user IDs are reserved for guest users');
    if (this.userId(localpart).length > MAX_USER_ID_LENGTH) throw bad('User ID is too long');
    return localpart;
  }

  /** Throws M_USER_IN_USE when the localpart is taken. */
  async ensureAvailable(localpart: string): Promise<void> {
    if (await this.store.users.exists(this.userId(localpart))) {
      throw new MatrixError(400, 'M_USER_IN_USE', 'User ID already taken.');
    }
  }

  /** Applies password_config.policy; throws M_WEAK_PASSWORD naming what is missing. */
  checkPasswordPolicy(password: string): void {
    const policy = this.config.password_config.policy;
    if (!policy.enabled) return;
    const weak = (msg: string) => new MatrixError(400, 'M_WEAK_PASSWORD', msg);
    if (password.length < policy.minimum_length) throw weak(`Password must be at least ${policy.minimum_length} characters long`);
    if (policy.require_digit && !/\d/.test(password)) throw weak('Password must contain a digit');
    if (policy.require_symbol && !/[^\p{L}\p{N}]/u.test(password)) throw weak('Password must contain a symbol');
    if (policy.require_lowercase && !/\p{Ll}/u.test(password)) throw weak('Password must contain a lowercase letter');
    if (policy.require_uppercase && !/\p{Lu}/u.test(password)) throw weak('Password must contain an uppercase letter');
  }

  passwordsEnabled(): boolean {
    return this.config.password_config.enabled === true && this.config.password_config.localdb_enabled;
  }

  /**
   * Creates the account and, unless inhibited, its first device and token, all in one transaction:
   * a failure anywhere leaves no half-created account. The database settles races on the ID.
   */
  async register(args: RegisterArgs): Promise<RegisterResult> {
    const now = this.clock.now();
    const hash = args.password !== undefined ? await this.hasher.hash(args.password) : (args.passwordHash ?? null);
    const newUser: NewUser = { hash, guest: args.guest, threepids: args.threepids ?? [], now, onCreated: args.onCreated };
    const firstSession = async (tx: Store, userId: string): Promise<RegisterResult> => {
      if (args.inhibitLogin) return { user_id: userId };
      const issued = await this.devices.within(tx).signIn({ userId, deviceId: args.deviceId, displayName: args.displayName, refresh: args.refresh, ip: args.ip });
      await args.onSignedIn?.(tx, userId, issued.device_id);
      return { user_id: userId, ...issued };
    };
    if (args.localpart === undefined) return this.createNumericUser(newUser, firstSession);
    const created = await this.createUser(this.userId(args.localpart), newUser, firstSession);
    if (!created) throw new MatrixError(400, 'M_USER_IN_USE', 'User ID already taken.');
    return created.result;
  }

  /**
   * The spec's guest upgrade: the guest account becomes a full one with this password and, unless
   * inhibited, a new device signs in, in one transaction. The guest's own tokens stay, no longer a guest's.
   */
  async upgradeGuest(userId: string, args: Omit<RegisterArgs, 'localpart' | 'guest' | 'threepids'>): Promise<RegisterResult> {
    const hash = args.password !== undefined ? await this.hasher.hash(args.password) : args.passwordHash;
    if (hash === undefined) throw new MatrixError(400, 'M_MISSING_PARAM', 'Missing parameter: password');
    const result = await this.store.transaction(async (tx): Promise<RegisterResult> => {
      if (!(await tx.users.upgradeGuest(userId, hash))) throw forbidden('This account is not a guest account');
      await this.devices.within(tx).userChanged(tx, userId);
      await args.onCreated?.(tx, userId);
      if (args.inhibitLogin) return { user_id: userId };
      const issued = await this.devices.within(tx).signIn({ userId, deviceId: args.deviceId, displayName: args.displayName, refresh: args.refresh, ip: args.ip });
      await args.onSignedIn?.(tx, userId, issued.device_id);
      return { user_id: userId, ...issued };
    });
    await this.devices.revocationsDelivered();
    return result;
  }

  private async bindThreepids(tx: Store, userId: string, threepids: NewThreepid[], now: number): Promise<void> {
    for (const t of threepids) {
      const added = await tx.threepids.add({ medium: t.medium, address: t.address, user_id: userId, validated_ts: t.validated_ts, added_ts: now });
      if (!added) throw new MatrixError(400, 'M_THREEPID_IN_USE', 'Third-party identifier is already in use');
    }
  }

  /** Creates the user row, binds its 3PIDs and runs `then` in one transaction; undefined when the ID is taken. */
  private createUser<T>(userId: string, user: NewUser, then: (tx: Store, userId: string) => Promise<T>): Promise<{ result: T } | undefined> {
    return this.store.transaction(async (tx) => {
      // Synapse's default display name is the localpart, so that clients greet a name, not an ID.
      const displayname = userId.slice(1, userId.indexOf(':'));
      if (!(await tx.users.create({ user_id: userId, password_hash: user.hash, created_ts: user.now, is_guest: user.guest, displayname }))) return undefined;
      await this.bindThreepids(tx, userId, user.threepids, user.now);
      await user.onCreated?.(tx, userId);
      return { result: await then(tx, userId) };
    });
  }

  /** Guests (and registrations without a username) get the next free numeric localpart. */
  private async createNumericUser<T>(user: NewUser, then: (tx: Store, userId: string) => Promise<T>): Promise<T> {
    let candidate = (await this.store.users.countUsers()) + 1;
    for (let attempt = 0; attempt < 50; attempt++, candidate++) {
      const created = await this.createUser(this.userId(String(candidate)), user, then);
      if (created) return created.result;
    }
    throw new MatrixError(500, 'M_UNKNOWN', 'Could not allocate a user ID');
  }

  /**
   * Checks a user's password. Missing, deactivated and wrong all take the same time and are not ok;
   * `deactivated` tells the deactivated account apart, from the same read.
   */
  async checkPassword(userId: string, password: string): Promise<{ ok: boolean; deactivated: boolean }> {
    const user = await this.store.users.get(userId);
    const ok = await this.hasher.verify(user?.password_hash, password);
    if (ok && user?.password_hash && this.hasher.needsRehash(user.password_hash)) {
      await this.store.users.setPasswordHash(userId, await this.hasher.hash(password));
    }
    return { ok, deactivated: user?.deactivated === 1 };
  }

  hashPassword(password: string): Promise<string> {
    return this.hasher.hash(password);
  }

  /** Sets a new password; with logoutDevices every other device (all, when keepDevice is undefined) is logged out. */
  async changePassword(userId: string, newPassword: string, logoutDevices: boolean, keepDevice?: string): Promise<void> {
    this.checkPasswordPolicy(newPassword);
    await this.changePasswordHash(userId, await this.hasher.hash(newPassword), logoutDevices, keepDevice);
  }

  /** As changePassword, with a password hashed earlier (its policy checked when it was given). */
  async changePasswordHash(userId: string, hash: string, logoutDevices: boolean, keepDevice?: string): Promise<void> {
    await this.store.transaction(async (tx) => {
      await tx.users.setPasswordHash(userId, hash);
      if (logoutDevices) await this.devices.within(tx).deleteDevices(userId, undefined, keepDevice);
    });
    await this.devices.revocationsDelivered();
  }

  /**
   * Ends an account for good: no password, no devices (nor their tokens, keys and queued messages),
   * no 3PIDs, no profile. Devices go the one way devices go, so every area's clean-up runs. Its
   * addresses are unbound at identity servers (at `idServer` too, when given): first tried at once,
   * then, for an identity server that did not answer, queued in the outbox with the deactivation.
   * `erase`: its events are served redacted from now on to whoever was not joined when they were sent.
   */
  async deactivate(userId: string, options: { idServer?: string | undefined; erase?: boolean | undefined } = {}): Promise<DeactivationResult> {
    const unbinding = await this.unbinder?.prepareDeactivation(this.store, userId, options.idServer);
    const result = await this.store.transaction(async (tx): Promise<DeactivationResult> => {
      await tx.users.markDeactivated(userId);
      await this.devices.within(tx).deleteDevices(userId);
      const threepids = await tx.threepids.deleteAll(userId);
      return { threepids, id_server_unbind_result: unbinding ? await unbinding.finish(tx, threepids) : 'success' };
    });
    await this.devices.revocationsDelivered();
    for (const hook of this.deactivationHooks) await hook(userId);
    // After the hooks: the member events that left the account's rooms are its last events, and erased too.
    if (options.erase === true) await this.store.adminUsers.setErased(userId, true);
    return result;
  }

  /** What other areas do once an account is deactivated (e.g. leaving its rooms), in the order registered. */
  private readonly deactivationHooks: ((userId: string) => Promise<void>)[] = [];

  onDeactivated(hook: (userId: string) => Promise<void>): void {
    this.deactivationHooks.push(hook);
  }

  async getProfile(userId: string): Promise<{ displayname?: string; avatar_url?: string }> {
    const user = this.isLocal(userId) ? await this.store.users.get(userId) : undefined;
    if (!user) throw notFound('Profile was not found');
    const profile: { displayname?: string; avatar_url?: string } = {};
    if (user.displayname !== null) profile.displayname = user.displayname;
    if (user.avatar_url !== null) profile.avatar_url = user.avatar_url;
    return profile;
  }

  /** Sets a profile field; its length and form were checked at the edge (common-schemas' Displayname, AvatarUrl). */
  async setProfileField(requesterId: string, userId: string, field: 'displayname' | 'avatar_url', value: string | null): Promise<void> {
    if (requesterId !== userId) throw forbidden("You may only change your own profile");
    await this.store.users.setProfileField(userId, field, value === '' ? null : value);
  }
}
