import type { Clock } from '../clock.js';
import { hashToken, randomLetters, randomToken } from '../crypto/tokens.js';
import { MatrixError, notFound } from '../errors.js';
import type { Store } from '../storage/index.js';
import type { TokenCache } from './token-cache.js';

export interface Requester {
  userId: string;
  deviceId: string;
  isGuest: boolean;
  tokenHash: string;
}

export interface IssuedTokens {
  access_token: string;
  device_id: string;
  refresh_token?: string;
  expires_in_ms?: number;
}

export interface TokenLifetimes {
  /** Lifetime of access tokens that come with a refresh token. */
  refreshableAccessTokenLifetimeMs: number;
  refreshTokenLifetimeMs?: number;
  /** On PostgreSQL: token owners kept in memory, forgotten in every process when revoked. */
  tokenCache?: TokenCache;
}

const unknownToken = (softLogout: boolean) =>
  new MatrixError(401, 'M_UNKNOWN_TOKEN', softLogout ? 'Access token has expired' : 'Unknown access token', { soft_logout: softLogout });

/**
 * Another area's part in deleting devices (e.g. their keys and queued messages). Runs in the
 * deleting unit of work, `work`, with the IDs of the devices that existed and are going; what must
 * wait for the commit goes through `work.afterCommit`.
 */
export type DeviceDeletionHook = (work: Store, userId: string, deviceIds: readonly string[]) => Promise<void>;

export interface SignInArgs {
  userId: string;
  deviceId?: string;
  displayName?: string;
  refresh: boolean;
  ip: string;
}

/** Another area's part in creating a device, in the creating unit of work; not for a login that reuses a device ID. */
export type DeviceCreationHook = (work: Store, userId: string, deviceId: string) => Promise<void>;

export const ACCESS_TOKEN_PREFIX = 'myt_';
export const REFRESH_TOKEN_PREFIX = 'myr_';

/** Devices and the access and refresh tokens that belong to them. */
export class DeviceService {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly options: TokenLifetimes,
    /** Other areas' clean-up when devices are deleted; every device deletion runs them. */
    readonly deviceDeletionHooks: DeviceDeletionHook[] = [],
    /** Other areas' part in a new device (e.g. its owner's device list changed). */
    readonly deviceCreationHooks: DeviceCreationHook[] = [],
  ) {}

  /** This service working in `work`, a caller's transaction: its writes commit or roll back with the caller's. */
  within(work: Store): DeviceService {
    return work === this.store ? this : new DeviceService(work, this.clock, this.options, this.deviceDeletionHooks, this.deviceCreationHooks);
  }

  /**
   * Creates (or reuses) a device and gives it a fresh token; earlier tokens of that device die.
   * Within a caller's unit of work (registration) it commits or rolls back with the caller's writes.
   */
  async signIn(args: SignInArgs): Promise<IssuedTokens> {
    const deviceId = args.deviceId ?? randomLetters(10);
    const now = this.clock.now();
    const issued = await this.store.transaction(async (tx) => {
      await tx.tokens.deleteForDevices(args.userId, [deviceId]);
      const isNew = (await tx.devices.get(args.userId, deviceId)) === undefined;
      // A device ID used again: its earlier tokens just died.
      if (!isNew) await this.revoked(tx, args.userId);
      await tx.devices.upsert({ user_id: args.userId, device_id: deviceId, display_name: args.displayName ?? null, created_ts: now, ip: args.ip });
      if (isNew) for (const hook of this.deviceCreationHooks) await hook(tx, args.userId, deviceId);
      return { device_id: deviceId, ...(await this.writeTokens(tx, args.userId, deviceId, args.refresh)) };
    });
    await this.revocationsDelivered();
    return issued;
  }

  /** The access-token cache, when there is one (PostgreSQL). */
  get tokenCache(): TokenCache | undefined {
    return this.options.tokenCache;
  }

  /** In the transaction that changes a user's tokens: every process's token cache forgets that user when it commits. */
  private async revoked(tx: Store, userId: string): Promise<void> {
    await this.options.tokenCache?.revoked(tx, userId);
  }

  /** In the transaction that changes what a user's token lookup reads (users.is_guest): caches forget that user. */
  async userChanged(tx: Store, userId: string): Promise<void> {
    await this.revoked(tx, userId);
  }

  /**
   * Waits until the revocations committed so far have reached every process (see token-cache.ts);
   * whoever commits a transaction that deleted tokens awaits this before answering.
   */
  async revocationsDelivered(): Promise<void> {
    await this.options.tokenCache?.delivered();
  }

  /** Writes a device's new access token (and refresh token, when asked) in the caller's transaction. */
  private async writeTokens(tx: Store, userId: string, deviceId: string, refresh: boolean, replaces: string | null = null): Promise<Omit<IssuedTokens, 'device_id'>> {
    const now = this.clock.now();
    const accessToken = ACCESS_TOKEN_PREFIX + randomToken(32);
    if (!refresh) {
      await tx.tokens.addAccessToken({
        token_hash: hashToken(accessToken),
        user_id: userId,
        device_id: deviceId,
        created_ts: now,
        expires_ts: null,
        refresh_token_hash: null,
        prev_refresh_hash: null,
      });
      return { access_token: accessToken };
    }
    const refreshToken = REFRESH_TOKEN_PREFIX + randomToken(32);
    const refreshHash = hashToken(refreshToken);
    const lifetime = this.options.refreshableAccessTokenLifetimeMs;
    await tx.tokens.addRefreshToken({
      token_hash: refreshHash,
      user_id: userId,
      device_id: deviceId,
      created_ts: now,
      expires_ts: this.options.refreshTokenLifetimeMs ? now + this.options.refreshTokenLifetimeMs : null,
      prev_token_hash: replaces,
    });
    await tx.tokens.addAccessToken({
      token_hash: hashToken(accessToken),
      user_id: userId,
      device_id: deviceId,
      created_ts: now,
      expires_ts: now + lifetime,
      refresh_token_hash: refreshHash,
      prev_refresh_hash: replaces,
    });
    return { access_token: accessToken, refresh_token: refreshToken, expires_in_ms: lifetime };
  }

  /** Who an access token belongs to; M_UNKNOWN_TOKEN (soft_logout when merely expired) otherwise. */
  async authenticate(accessToken: string): Promise<Requester> {
    const tokenHash = hashToken(accessToken);
    const cache = this.options.tokenCache;
    let owner = cache?.get(tokenHash);
    if (owner === undefined) {
      const mark = cache?.mark() ?? 0;
      owner = await this.store.tokens.findAccessToken(tokenHash);
      // Kept only once nothing is left to do on first use (the replaced refresh token revoked).
      if (cache && owner && !owner.deactivated && owner.prev_refresh_hash === null) cache.put(tokenHash, owner, mark);
    }
    if (!owner || owner.deactivated) throw unknownToken(false);
    if (owner.expires_ts !== null && owner.expires_ts <= this.clock.now()) throw unknownToken(true);
    if (owner.prev_refresh_hash !== null && owner.refresh_token_hash !== null) {
      await this.revokeReplaced(owner.prev_refresh_hash, owner.refresh_token_hash, owner.user_id);
    }
    return { userId: owner.user_id, deviceId: owner.device_id, isGuest: owner.is_guest === 1, tokenHash };
  }

  private async revokeReplaced(prevRefreshHash: string, keepRefreshHash: string, userId: string): Promise<void> {
    await this.store.transaction(async (tx) => {
      await tx.tokens.revokeReplaced(prevRefreshHash, keepRefreshHash);
      await this.revoked(tx, userId);
    });
    await this.revocationsDelivered();
  }

  /**
   * Exchanges a refresh token for a new pair. As the spec has it, the old refresh token keeps working
   * until the new access or refresh token is first used (so a client that lost the answer can retry);
   * the old access token dies at once.
   */
  async refresh(refreshToken: string): Promise<Omit<IssuedTokens, 'device_id'>> {
    const oldHash = hashToken(refreshToken);
    const owner = await this.store.tokens.getRefreshToken(oldHash);
    if (!owner) throw unknownToken(false);
    if (owner.expires_ts !== null && owner.expires_ts <= this.clock.now()) throw unknownToken(true);
    const user = await this.store.users.get(owner.user_id);
    if (!user || user.deactivated) throw unknownToken(false);
    if (owner.prev_token_hash !== null) await this.revokeReplaced(owner.prev_token_hash, oldHash, owner.user_id);
    const issued = await this.store.transaction(async (tx) => {
      const issued = await this.writeTokens(tx, owner.user_id, owner.device_id, true, oldHash);
      await tx.tokens.deleteAccessTokensOfRefresh(oldHash);
      await this.revoked(tx, owner.user_id);
      return issued;
    });
    await this.revocationsDelivered();
    return issued;
  }

  async listDevices(userId: string) {
    return (await this.store.devices.list(userId)).map(deviceView);
  }

  async getDevice(userId: string, deviceId: string) {
    const row = await this.store.devices.get(userId, deviceId);
    if (!row) throw notFound('Device not found');
    return deviceView(row);
  }

  async renameDevice(userId: string, deviceId: string, displayName: string | null): Promise<void> {
    if (!(await this.store.devices.rename(userId, deviceId, displayName))) throw notFound('Device not found');
  }

  /**
   * Deletes devices and their tokens (all the user's when deviceIds is undefined), except `keep`, with
   * everything other areas hold for them. The one way devices go: logout, device deletion, password
   * change and account deactivation all come here.
   */
  async deleteDevices(userId: string, deviceIds?: readonly string[], keep?: string): Promise<void> {
    await this.store.transaction(async (tx) => {
      const existing = (await tx.devices.list(userId)).map((d) => d.device_id);
      const gone = existing.filter((id) => (deviceIds === undefined || deviceIds.includes(id)) && id !== keep);
      await tx.tokens.deleteForDevices(userId, deviceIds, keep);
      await this.revoked(tx, userId);
      await tx.devices.delete(userId, deviceIds, keep);
      if (gone.length > 0) for (const hook of this.deviceDeletionHooks) await hook(tx, userId, gone);
    });
    // Inside a caller's transaction nothing has committed yet: the caller awaits this after its commit.
    await this.revocationsDelivered();
  }

  touchDevice(requester: Requester, now: number, ip: string): Promise<void> {
    return this.store.devices.touch(requester.userId, requester.deviceId, now, ip);
  }

  /** Logs out the device of one request: the device and every token of it. */
  logout(requester: Requester): Promise<void> {
    return this.deleteDevices(requester.userId, [requester.deviceId]);
  }
}

function deviceView(row: { device_id: string; display_name: string | null; last_seen_ip: string | null; last_seen_ts: number | null }) {
  const view: { device_id: string; display_name?: string; last_seen_ip?: string; last_seen_ts?: number } = { device_id: row.device_id };
  if (row.display_name !== null) view.display_name = row.display_name;
  if (row.last_seen_ip !== null) view.last_seen_ip = row.last_seen_ip;
  if (row.last_seen_ts !== null) view.last_seen_ts = row.last_seen_ts;
  return view;
}
