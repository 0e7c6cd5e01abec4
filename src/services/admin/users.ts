import type { Clock } from '../../clock.js';
import type { Config } from '../../config/index.js';
import { ACCESS_TOKEN_PREFIX, type DeviceService, type Requester } from '../devices.js';
import { hashToken, randomLetters, randomToken } from '../../crypto/tokens.js';
import { MatrixError, forbidden, invalidParam, notFound } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import type { UserOrder } from '../../storage/admin-users.js';
import type { UserRow } from '../../storage/users.js';
import type { AccountService } from '../accounts.js';
import { canonicaliseAddress } from '../threepid/address.js';
import type { IdentityUnbinding } from '../threepid/identity-unbind.js';
import type { ProfilePropagation } from '../rooms/profile-propagation.js';
import { isUserId } from '../user-ids.js';

/** GET /_synapse/admin/v2/users, as parsed at the edge. */
export interface UserListRequest {
  from: number;
  limit: number;
  name?: string | undefined;
  user_id?: string | undefined;
  guests: boolean;
  deactivated: boolean;
  admins?: boolean | undefined;
  order_by: UserOrder;
  dir: 'f' | 'b';
}

/** PUT /_synapse/admin/v2/users/{userId}, as parsed at the edge (3PID addresses canonicalised). */
export interface UserUpsert {
  password?: string | undefined;
  logout_devices?: boolean | undefined;
  displayname?: string | undefined;
  avatar_url?: string | undefined;
  threepids?: { medium: 'email' | 'msisdn'; address: string }[] | undefined;
  admin?: boolean | undefined;
  deactivated?: boolean | undefined;
}

const badUser = (msg: string) => new MatrixError(400, 'M_INVALID_PARAM', msg);

/**
 * The admin API's users: lists and details in Synapse's shapes, and changes made through the
 * services every other path uses (registration, password changes, device deletion, deactivation),
 * so that an admin's change has the same effects as the user's own.
 */
export class AdminUserService {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly config: Config,
    private readonly accounts: AccountService,
    private readonly devices: DeviceService,
    /** Unbinds an address at the identity servers it was bound to through Myelin. */
    private readonly identity: Pick<IdentityUnbinding, 'unbind'>,
    /** As Synapse: a profile the admin changes reaches the user's rooms, as the user's own change does. */
    private readonly profilePropagation: Pick<ProfilePropagation, 'request'>,
  ) {}

  /** A user ID the admin API may act on: well formed and of this server (400 otherwise). */
  checkLocal(userId: string): void {
    if (!isUserId(userId)) throw badUser(`Invalid user ID: ${userId.slice(0, 300)}`);
    if (!this.accounts.isLocal(userId)) throw badUser('This endpoint can only be used with local users');
  }

  /** The local user's row; 400 for a remote user, 404 for an unknown one. */
  async existing(userId: string): Promise<UserRow> {
    this.checkLocal(userId);
    const user = await this.store.users.get(userId);
    if (!user) throw notFound('User not found');
    return user;
  }

  async list(req: UserListRequest): Promise<{ users: Record<string, unknown>[]; total: number; next_token?: string }> {
    const { rows, total } = await this.store.adminUsers.list({
      serverName: this.config.server_name,
      name: req.name,
      userId: req.user_id,
      guests: req.guests,
      deactivated: req.deactivated,
      admins: req.admins,
      orderBy: req.order_by,
      dir: req.dir,
      from: req.from,
      limit: req.limit,
    });
    const users = rows.map((r) => ({
      name: r.user_id,
      is_guest: r.is_guest === 1,
      admin: r.admin === 1,
      user_type: null,
      deactivated: r.deactivated === 1,
      erased: r.erased === 1,
      shadow_banned: false,
      displayname: r.displayname,
      avatar_url: r.avatar_url,
      // In the list, milliseconds (Synapse's documented shape)...
      creation_ts: r.created_ts,
      last_seen_ts: r.last_seen_ts,
      locked: false,
    }));
    return { users, total, ...(req.from + req.limit < total ? { next_token: String(req.from + users.length) } : {}) };
  }

  async details(userId: string): Promise<Record<string, unknown>> {
    const user = await this.existing(userId);
    const threepids = await this.store.threepids.list(userId);
    return {
      name: user.user_id,
      displayname: user.displayname,
      threepids: threepids.map((t) => ({ medium: t.medium, address: t.address, added_at: Number(t.added_ts), validated_at: Number(t.validated_ts) })),
      avatar_url: user.avatar_url,
      is_guest: user.is_guest === 1,
      admin: user.admin === 1,
      deactivated: user.deactivated === 1,
      erased: user.erased === 1,
      shadow_banned: false,
      // ...and here seconds, as Synapse answers for one user (its users table keeps seconds).
      creation_ts: Math.floor(Number(user.created_ts) / 1000),
      last_seen_ts: await this.store.adminUsers.lastSeen(userId),
      appservice_id: null,
      consent_server_notice_sent: null,
      consent_version: null,
      consent_ts: null,
      external_ids: [],
      user_type: null,
      locked: false,
      suspended: false,
    };
  }

  private checkPasswordsEnabled(): void {
    if (!this.accounts.passwordsEnabled()) throw forbidden('Passwords are disabled on this server');
  }

  /** The 3PIDs must be free or already the user's own; M_THREEPID_IN_USE names the first that is not. */
  private async checkThreepidsFree(userId: string | undefined, threepids: readonly { medium: string; address: string }[]): Promise<void> {
    for (const t of threepids) {
      const holder = await this.store.threepids.findUser(t.medium, t.address);
      if (holder !== undefined && holder !== userId) throw new MatrixError(400, 'M_THREEPID_IN_USE', `${t.medium} ${t.address} is already in use by another account`);
    }
  }

  /**
   * Creates the account (201) or changes it (200). Everything is checked before anything is
   * written; the changes are then made in one transaction, deactivation (which leaves rooms) last.
   */
  async upsert(requester: Requester, userId: string, req: UserUpsert): Promise<{ created: boolean; user: Record<string, unknown> }> {
    this.checkLocal(userId);
    if (req.password !== undefined) this.checkPasswordsEnabled();
    if (req.password !== undefined && req.deactivated === true) throw invalidParam('A password cannot be set on an account being deactivated');
    const threepids = req.threepids === undefined ? undefined : dedupe(req.threepids);
    const user = await this.store.users.get(userId);
    if (threepids) await this.checkThreepidsFree(user?.user_id, threepids);
    // Hashed before any transaction: hashing is slow on purpose.
    const hash = async () => (req.password !== undefined ? this.accounts.hashPassword(req.password) : undefined);
    if (!user) {
      await this.create(userId, req, await hash(), threepids);
      return { created: true, user: await this.details(userId) };
    }

    const reactivate = req.deactivated === false && user.deactivated === 1;
    const deactivate = req.deactivated === true && user.deactivated === 0;
    if (reactivate && req.password === undefined && this.accounts.passwordsEnabled()) throw invalidParam('Must provide a password to re-activate an account.');
    if (req.admin === false && user.admin === 1 && userId === requester.userId) throw invalidParam('You may not demote yourself.');
    // As Synapse does, an address taken off the account is unbound where it was bound; an identity
    // server that gives no answer fails the request before anything here has changed.
    if (threepids) {
      const wanted = new Set(threepids.map(threepidKey));
      for (const t of await this.store.threepids.list(userId)) if (!wanted.has(threepidKey(t))) await this.identity.unbind(userId, t);
    }
    const passwordHash = await hash();
    const now = this.clock.now();
    await this.store.transaction(async (tx) => {
      if (req.displayname !== undefined) await tx.users.setProfileField(userId, 'displayname', req.displayname === '' ? null : req.displayname);
      if (req.avatar_url !== undefined) await tx.users.setProfileField(userId, 'avatar_url', req.avatar_url === '' ? null : req.avatar_url);
      // Not for an account being deactivated: it leaves its rooms instead.
      if ((req.displayname !== undefined || req.avatar_url !== undefined) && !deactivate) await this.profilePropagation.request(tx, userId);
      if (threepids) await replaceThreepids(tx, userId, threepids, now);
      if (req.admin !== undefined) await tx.adminUsers.setAdmin(userId, req.admin);
      if (reactivate) {
        await tx.adminUsers.reactivate(userId);
        // What token lookups read changed (users.deactivated): every process's token cache forgets the user.
        await this.devices.tokenCache?.revoked(tx, userId);
      }
      if (passwordHash !== undefined) await this.accounts.within(tx).changePasswordHash(userId, passwordHash, req.logout_devices ?? true);
    });
    await this.devices.revocationsDelivered();
    if (deactivate) await this.accounts.deactivate(userId);
    return { created: false, user: await this.details(userId) };
  }

  private async create(userId: string, req: UserUpsert, passwordHash: string | undefined, threepids: UserUpsert['threepids']): Promise<void> {
    if (req.deactivated === true) throw invalidParam('A new account cannot be created deactivated');
    const localpart = userId.slice(1, userId.indexOf(':'));
    if (this.accounts.validateLocalpart(localpart) !== localpart) throw new MatrixError(400, 'M_INVALID_USERNAME', 'User ID may not contain upper-case letters');
    const now = this.clock.now();
    await this.accounts.register({
      localpart,
      ...(passwordHash !== undefined ? { passwordHash } : {}),
      guest: false,
      inhibitLogin: true,
      refresh: false,
      ip: '127.0.0.1',
      threepids: (threepids ?? []).map((t) => ({ ...t, validated_ts: now })),
      onCreated: async (tx) => {
        if (req.admin === true) await tx.adminUsers.setAdmin(userId, true);
        if (req.displayname !== undefined) await tx.users.setProfileField(userId, 'displayname', req.displayname === '' ? null : req.displayname);
        if (req.avatar_url !== undefined && req.avatar_url !== '') await tx.users.setProfileField(userId, 'avatar_url', req.avatar_url);
      },
    });
  }

  /** Deactivates the account the way the user's own deactivation does; `erase` also marks it erased. */
  async deactivate(userId: string, erase: boolean): Promise<{ id_server_unbind_result: string }> {
    await this.existing(userId);
    const { id_server_unbind_result: unbound } = await this.accounts.deactivate(userId, { erase });
    return { id_server_unbind_result: unbound };
  }

  async resetPassword(userId: string, newPassword: string, logoutDevices: boolean): Promise<void> {
    await this.existing(userId);
    this.checkPasswordsEnabled();
    await this.accounts.changePasswordHash(userId, await this.accounts.hashPassword(newPassword), logoutDevices);
  }

  /** The user's devices as sessions with their last connection (Myelin keeps one per device, without the user agent). */
  async whois(requester: Requester, userId: string, requireAdmin: (requester: Requester) => Promise<void>): Promise<Record<string, unknown>> {
    if (userId !== requester.userId) await requireAdmin(requester);
    await this.existing(userId);
    const devices: Record<string, unknown> = {};
    for (const d of await this.store.devices.list(userId)) {
      const connections = d.last_seen_ip !== null && d.last_seen_ts !== null ? [{ ip: d.last_seen_ip, last_seen: Number(d.last_seen_ts) }] : [];
      devices[d.device_id] = { sessions: [{ connections }] };
    }
    return { user_id: userId, devices };
  }

  async listDevices(userId: string): Promise<{ devices: Record<string, unknown>[]; total: number }> {
    await this.existing(userId);
    const devices = (await this.devices.listDevices(userId)).map((d) => ({ ...d, user_id: userId, dehydrated: false }));
    return { devices, total: devices.length };
  }

  async getDevice(userId: string, deviceId: string): Promise<Record<string, unknown>> {
    await this.existing(userId);
    return { ...(await this.devices.getDevice(userId, deviceId)), user_id: userId };
  }

  async renameDevice(userId: string, deviceId: string, displayName: string | undefined): Promise<void> {
    await this.existing(userId);
    if (displayName !== undefined) await this.devices.renameDevice(userId, deviceId, displayName);
    else await this.devices.getDevice(userId, deviceId);
  }

  /** Deletes devices (unknown ones are skipped, as Synapse does) with their tokens, keys and messages. */
  async deleteDevices(userId: string, deviceIds: readonly string[]): Promise<void> {
    await this.existing(userId);
    await this.devices.deleteDevices(userId, deviceIds);
  }

  async findByThreepid(medium: string, address: string): Promise<{ user_id: string }> {
    let canonical: string;
    try {
      canonical = canonicaliseAddress(medium, address);
    } catch {
      throw notFound('User not found');
    }
    const userId = await this.store.threepids.findUser(medium, canonical);
    if (userId === undefined) throw notFound('User not found');
    return { user_id: userId };
  }

  async isAdmin(userId: string): Promise<{ admin: boolean }> {
    const user = await this.existing(userId);
    return { admin: user.admin === 1 };
  }

  async setAdmin(requester: Requester, userId: string, admin: boolean): Promise<void> {
    const user = await this.existing(userId);
    if (!admin && userId === requester.userId) throw invalidParam('You may not demote yourself.');
    if ((user.admin === 1) !== admin) await this.store.adminUsers.setAdmin(userId, admin);
  }

  /**
   * An access token of the user for the admin (Synapse's "login as a user"): on no device of the
   * user's, so it is in no device list; /logout with it ends it. Logging in as oneself is refused.
   */
  async puppetToken(requester: Requester, userId: string, validUntilMs: number | undefined): Promise<{ access_token: string }> {
    const user = await this.existing(userId);
    if (userId === requester.userId) throw invalidParam('Cannot use admin API to login as self');
    if (user.deactivated === 1) throw invalidParam('The user is deactivated');
    if (validUntilMs !== undefined && validUntilMs <= this.clock.now()) throw invalidParam("'valid_until_ms' is in the past");
    const accessToken = ACCESS_TOKEN_PREFIX + randomToken(32);
    await this.store.tokens.addAccessToken({
      token_hash: hashToken(accessToken),
      user_id: userId,
      device_id: `PUPPET_${randomLetters(10)}`,
      created_ts: this.clock.now(),
      expires_ts: validUntilMs ?? null,
      refresh_token_hash: null,
      prev_refresh_hash: null,
    });
    return { access_token: accessToken };
  }

  /** The rooms the user is joined to (a remote user's too, as far as this server knows). */
  async joinedRooms(userId: string): Promise<{ joined_rooms: string[]; total: number }> {
    if (!isUserId(userId)) throw badUser(`Invalid user ID: ${userId.slice(0, 300)}`);
    if (this.accounts.isLocal(userId)) await this.existing(userId);
    const rooms = (await this.store.rooms.roomsOf(userId, ['join'])).map((m) => m.room_id).sort();
    return { joined_rooms: rooms, total: rooms.length };
  }
}

const threepidKey = (t: { medium: string; address: string }) => `${t.medium}\u0000${t.address}`;

function dedupe<T extends { medium: string; address: string }>(threepids: readonly T[]): T[] {
  const seen = new Map<string, T>();
  for (const t of threepids) seen.set(threepidKey(t), t);
  return [...seen.values()];
}

/** The user's 3PIDs become exactly `threepids`: the others are removed, the new ones added as validated now. */
async function replaceThreepids(tx: Store, userId: string, threepids: readonly { medium: string; address: string }[], now: number): Promise<void> {
  const wanted = new Set(threepids.map(threepidKey));
  const current = await tx.threepids.list(userId);
  for (const t of current) if (!wanted.has(threepidKey(t))) await tx.threepids.delete(userId, t.medium, t.address);
  const have = new Set(current.map(threepidKey));
  for (const t of threepids) {
    if (have.has(threepidKey(t))) continue;
    if (!(await tx.threepids.add({ medium: t.medium, address: t.address, user_id: userId, validated_ts: now, added_ts: now }))) {
      throw new MatrixError(400, 'M_THREEPID_IN_USE', `${t.medium} ${t.address} is already in use by another account`);
    }
  }
}
