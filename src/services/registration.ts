import type { Config } from '../config/index.js';
import { MatrixError, forbidden, missingParam } from '../errors.js';
import { optionalBoolean, optionalString, type JsonObject } from '../validate.js';
import type { AccountService, NewThreepid, RegisterResult } from './accounts.js';
import { addressBucket, type RateLimiter } from './ratelimiter.js';
import type { UiaService } from './uia.js';

/** Builds the UIA flows offered for registration from the current config. */
export type RegistrationFlows = () => string[][];

/** POST /register: who may register, with which UIA flows, and under which limits. */
export class RegistrationService {
  constructor(
    private readonly config: Config,
    private readonly accounts: AccountService,
    private readonly uia: UiaService,
    private readonly limiter: RateLimiter,
    readonly flows: RegistrationFlows,
  ) {}

  async register(body: JsonObject, kind: string, ip: string): Promise<RegisterResult> {
    if (kind !== 'user' && kind !== 'guest') throw new MatrixError(400, 'M_INVALID_PARAM', "'kind' must be 'user' or 'guest'");
    const username = optionalString(body, 'username', 512);
    const password = optionalString(body, 'password', 512);
    const deviceId = optionalString(body, 'device_id', 512);
    const displayName = optionalString(body, 'initial_device_display_name', 512);
    const inhibitLogin = optionalBoolean(body, 'inhibit_login') ?? false;
    const refresh = optionalBoolean(body, 'refresh_token') ?? false;
    await this.limiter.check(`register:ip:${addressBucket(ip)}`, this.config.rc_registration);

    if (kind === 'guest') {
      if (!this.config.allow_guest_access) throw new MatrixError(403, 'M_GUEST_ACCESS_FORBIDDEN', 'Guest access is disabled');
      await this.limiter.take(`register:ip:${addressBucket(ip)}`, this.config.rc_registration);
      return this.accounts.register({ guest: true, inhibitLogin: false, refresh, ip, displayName });
    }

    if (!this.config.enable_registration) throw forbidden('Registration has been disabled');
    if (!this.accounts.passwordsEnabled()) throw forbidden('Registration with a password is disabled');
    const localpart = username !== undefined ? this.accounts.validateLocalpart(username) : undefined;
    if (localpart !== undefined && !this.config.inhibit_user_in_use_error) await this.accounts.ensureAvailable(localpart);
    if (password !== undefined) this.accounts.checkPasswordPolicy(password);

    const outcome = await this.uia.authenticate({ auth: body.auth, operation: 'POST /register', flows: this.flows(), ip });
    if (password === undefined) throw missingParam('password');
    if (!(await this.uia.finish(outcome.sessionId))) throw forbidden('This authentication session has already been used');
    const threepids: NewThreepid[] = [];
    for (const result of Object.values(outcome.results)) {
      const threepid = result.threepid as NewThreepid | undefined;
      if (threepid) threepids.push(threepid);
    }
    await this.limiter.take(`register:ip:${addressBucket(ip)}`, this.config.rc_registration);
    return this.accounts.register({ localpart, password, guest: false, deviceId, displayName, inhibitLogin, refresh, ip, threepids });
  }
}
