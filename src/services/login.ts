import type { Config } from '../config/index.js';
import { MatrixError, forbidden } from '../errors.js';
import { identifierOf, type IdentifierFieldValues } from '../http/common-schemas.js';
import type { Store } from '../storage/index.js';
import type { AccountService } from './accounts.js';
import { resolveIdentifier } from './identifiers.js';
import { addressBucket, type RateLimiter } from './ratelimiter.js';
import type { IssuedTokens, DeviceService } from './devices.js';

/** POST /login with m.login.password, as parsed at the edge. */
export interface LoginRequest {
  /** Who logs in: `identifier` or its legacy forms. */
  who: IdentifierFieldValues;
  password: string;
  deviceId?: string | undefined;
  displayName?: string | undefined;
  refresh: boolean;
  ip: string;
}

export const unknownLoginType = () => new MatrixError(400, 'M_UNKNOWN', 'Unknown login type');

const invalidLogin = () => forbidden('Invalid username or password');

/** POST /login with m.login.password: identifier resolution, rate limits, password check, new device. */
export class LoginService {
  constructor(
    private readonly store: Store,
    private readonly config: Config,
    private readonly accounts: AccountService,
    private readonly devices: DeviceService,
    private readonly limiter: RateLimiter,
  ) {}

  flows(): { type: string }[] {
    return this.accounts.passwordsEnabled() ? [{ type: 'm.login.password' }] : [];
  }

  async login({ who: fields, password, deviceId, displayName, refresh, ip }: LoginRequest): Promise<{ user_id: string; home_server: string } & IssuedTokens> {
    if (!this.accounts.passwordsEnabled()) throw unknownLoginType();
    const identifier = identifierOf(fields);

    const rc = this.config.rc_login;
    await this.limiter.take(`login:ip:${addressBucket(ip)}`, rc.address);
    const who = await resolveIdentifier(identifier, this.accounts, this.store);
    const accountKey = who.kind === 'user' ? who.userId : who.limitKey;
    await this.limiter.take(`login:account:${accountKey}`, rc.account);
    await this.limiter.check(`login:failed:${accountKey}`, rc.failed_attempts);

    const { ok, deactivated } = await this.accounts.checkPassword(who.kind === 'user' ? who.userId : '', password);
    // Deactivation clears the password hash, so a deactivated account never passes the check; it
    // is told apart (whatever password was given) so its owner learns why, not "wrong password".
    // That the ID exists is no secret: /register/available tells anyone.
    if (!ok || who.kind !== 'user' || deactivated) {
      await this.limiter.record(`login:failed:${accountKey}`, rc.failed_attempts);
      if (deactivated) throw new MatrixError(403, 'M_USER_DEACTIVATED', 'This account has been deactivated');
      throw invalidLogin();
    }
    const issued = await this.devices.signIn({ userId: who.userId, deviceId, displayName, refresh, ip });
    return { user_id: who.userId, home_server: this.config.server_name, ...issued };
  }
}
