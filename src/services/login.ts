import type { Config } from '../config/index.js';
import { MatrixError, badJson, forbidden, missingParam } from '../errors.js';
import { optionalString } from '../validate.js';
import type { Store } from '../storage/index.js';
import type { AccountService } from './accounts.js';
import { resolveIdentifier } from './identifiers.js';
import { addressBucket, type RateLimiter } from './ratelimiter.js';
import type { IssuedTokens, DeviceService } from './devices.js';

export interface LoginArgs {
  body: Record<string, unknown>;
  ip: string;
}

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

  async login({ body, ip }: LoginArgs): Promise<{ user_id: string; home_server: string } & IssuedTokens> {
    const type = body.type;
    if (type === undefined) throw missingParam('type');
    if (type !== 'm.login.password' || !this.accounts.passwordsEnabled()) {
      throw new MatrixError(400, 'M_UNKNOWN', 'Unknown login type');
    }
    const password = body.password;
    if (password === undefined) throw missingParam('password');
    if (typeof password !== 'string') throw badJson("'password' must be a string");
    const deviceId = optionalString(body, 'device_id', 512);
    const displayName = optionalString(body, 'initial_device_display_name', 512);
    const refresh = body.refresh_token;
    if (refresh !== undefined && typeof refresh !== 'boolean') throw badJson("'refresh_token' must be a boolean");

    const rc = this.config.rc_login;
    await this.limiter.take(`login:ip:${addressBucket(ip)}`, rc.address);
    const who = await resolveIdentifier(body, this.accounts, this.store);
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
    const issued = await this.devices.signIn({ userId: who.userId, deviceId, displayName, refresh: refresh === true, ip });
    return { user_id: who.userId, home_server: this.config.server_name, ...issued };
  }
}
