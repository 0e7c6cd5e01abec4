import type { Config } from '../config/index.js';
import { MatrixError, forbidden, missingParam } from '../errors.js';
import { isObject, optionalBoolean, optionalString, type JsonObject } from '../validate.js';
import type { AccountService, NewThreepid, RegisterResult } from './accounts.js';
import { addressBucket, type RateLimiter } from './ratelimiter.js';
import type { DeviceService } from './devices.js';
import { uiaParams, type UiaOutcome, type UiaService } from './uia.js';

/** Builds the UIA flows offered for registration from the current config. */
export type RegistrationFlows = () => string[][];

const OPERATION = 'POST /register';

/** What a completed registration session keeps for a retry: never a token. */
interface RecordedRegistration extends JsonObject {
  user_id: string;
  device_id?: string;
}

/** POST /register: who may register, with which UIA flows, and under which limits. */
export class RegistrationService {
  constructor(
    private readonly config: Config,
    private readonly accounts: AccountService,
    private readonly devices: DeviceService,
    private readonly uia: UiaService,
    private readonly limiter: RateLimiter,
    readonly flows: RegistrationFlows,
  ) {}

  async register(body: JsonObject, kind: string, ip: string): Promise<RegisterResult> {
    if (kind !== 'user' && kind !== 'guest') throw new MatrixError(400, 'M_INVALID_PARAM', "'kind' must be 'user' or 'guest'");
    const username = optionalString(body, 'username', 512);
    const password = optionalString(body, 'password', 512);
    optionalString(body, 'device_id', 512);
    const displayName = optionalString(body, 'initial_device_display_name', 512);
    optionalBoolean(body, 'inhibit_login');
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
    // A retry of a completed registration names a user that now exists: that is not "in use".
    const session = isObject(body.auth) && typeof body.auth.session === 'string' ? body.auth.session : undefined;
    const retry = session !== undefined && (await this.uia.isCompleted(session));
    if (localpart !== undefined && !this.config.inhibit_user_in_use_error && !retry) await this.accounts.ensureAvailable(localpart);
    if (password !== undefined) this.accounts.checkPasswordPolicy(password);

    // The password is remembered only as a hash. As Synapse does, a display name sent without a
    // password is dropped: some clients send it alone, which would replace the remembered request.
    const params = uiaParams(body, 'password', 'refresh_token');
    if (password === undefined) delete params.initial_device_display_name;
    const flows = this.flows();
    const outcome = await this.uia.authenticate({
      auth: body.auth,
      operation: OPERATION,
      flows,
      ip,
      params,
      ...(password !== undefined ? { hashSecret: () => this.accounts.hashPassword(password) } : {}),
    });
    if (outcome.replay) return this.replay(outcome, flows, password, refresh, ip);

    const remembered = outcome.params;
    const finalLocalpart = remembered === params ? localpart : this.rememberedLocalpart(remembered);
    if (finalLocalpart !== undefined && finalLocalpart !== localpart && !this.config.inhibit_user_in_use_error) await this.accounts.ensureAvailable(finalLocalpart);
    if (password === undefined && outcome.secretHash === undefined) throw missingParam('password');
    if (!(await this.uia.finish(outcome.sessionId))) throw this.uia.completedAnswer({ flows }, outcome);
    const threepids: NewThreepid[] = [];
    for (const result of Object.values(outcome.results)) {
      const threepid = result.threepid as NewThreepid | undefined;
      if (threepid) threepids.push(threepid);
    }
    await this.limiter.take(`register:ip:${addressBucket(ip)}`, this.config.rc_registration);
    const result = await this.accounts.register({
      localpart: finalLocalpart,
      ...(password !== undefined ? { password } : { passwordHash: outcome.secretHash }),
      guest: false,
      deviceId: optionalString(remembered, 'device_id', 512),
      displayName: optionalString(remembered, 'initial_device_display_name', 512),
      inhibitLogin: optionalBoolean(remembered, 'inhibit_login') ?? false,
      refresh,
      ip,
      threepids,
    });
    const recorded: RecordedRegistration = { user_id: result.user_id, ...(result.device_id !== undefined ? { device_id: result.device_id } : {}) };
    await this.uia.record(outcome.sessionId, recorded);
    return result;
  }

  private rememberedLocalpart(params: JsonObject): string | undefined {
    const username = optionalString(params, 'username', 512);
    return username !== undefined ? this.accounts.validateLocalpart(username) : undefined;
  }

  /**
   * A retry of the request that completed registration gets its answer again: the same user and
   * device, with a fresh token (the device's earlier one, lost with the first answer, dies). As a
   * new login, it needs the password; the session ID alone is not a credential.
   */
  private async replay(outcome: UiaOutcome, flows: string[][], password: string | undefined, refresh: boolean, ip: string): Promise<RegisterResult> {
    const recorded = outcome.replay as RecordedRegistration;
    if (recorded.device_id === undefined) return { user_id: recorded.user_id };
    const check = password !== undefined ? await this.accounts.checkPassword(recorded.user_id, password) : undefined;
    if (!check?.ok || check.deactivated) throw this.uia.completedAnswer({ flows }, outcome);
    const issued = await this.devices.signIn({ userId: recorded.user_id, deviceId: recorded.device_id, refresh, ip });
    return { user_id: recorded.user_id, ...issued };
  }
}
