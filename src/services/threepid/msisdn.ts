import type { Clock } from '../../clock.js';
import type { Config } from '../../config/index.js';
import type { Delivery } from '../../delivery/index.js';
import { smsChannel } from '../../delivery/sms/channel.js';
import type { SmsTemplateName } from '../../delivery/types.js';
import { MatrixError } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import { requireString, type JsonObject } from '../../validate.js';
import { addressBucket, type RateLimiter } from '../ratelimiter.js';
import { ThreepidStage } from '../stages/threepid.js';
import type { UiaService } from '../uia.js';
import { canonicaliseMsisdn } from './address.js';
import { ensureFlowOpen, ensureThreepidAllowed, ownerRefusal, parseTokenRequest, unsupportedMedium } from './policy.js';
import { SmsLimits } from './sms-limits.js';
import { DEFAULT_VALIDATION_SESSION_OPTIONS, ValidationSessionService, type ThreepidFlow } from './validation-sessions.js';
import { absolute, submitTokenPath } from './urls.js';

export const MSISDN_STAGE = 'm.login.msisdn';

export interface MsisdnTokenResponse {
  sid: string;
  submit_url: string;
  /** E.164 digits without '+', as stored. */
  msisdn: string;
  /** The number in international format, for display. */
  intl_fmt: string;
}

export interface MsisdnDeps {
  config: Config;
  store: Store;
  clock: Clock;
  limiter: RateLimiter;
  uia: UiaService;
  delivery: Delivery;
  publicBaseUrl: string;
  passwordsEnabled: () => boolean;
}

/**
 * Phone number validation: Myelin sends the code by SMS itself. The generic session rules
 * (idempotent requests, hashed single-use codes, five tries) are ValidationSessionService's; this adds
 * what SMS needs on top: number parsing, country rules, per-number and global send caps, and
 * password reset only when the admin opted in.
 */
export class MsisdnValidationService {
  private readonly limits: SmsLimits | undefined;
  /** The same sessions as every medium's, minting codes of sms.code_length digits. */
  readonly sessions: ValidationSessionService;

  constructor(private readonly deps: MsisdnDeps) {
    const sms = deps.config.sms;
    this.limits = sms ? new SmsLimits(sms, deps.clock) : undefined;
    this.sessions = new ValidationSessionService(deps.store, deps.clock, {
      ...DEFAULT_VALIDATION_SESSION_OPTIONS,
      codeAttemptsPerAddressPerDay: deps.config.max_code_attempts_per_address_per_day,
      codeDigits: sms?.code_length ?? DEFAULT_VALIDATION_SESSION_OPTIONS.codeDigits,
      validatedLifetimeMs: deps.config.ui_auth_session_lifetime,
    });
  }

  get enabled(): boolean {
    return this.deps.config.sms !== undefined;
  }

  /** Password reset by SMS: only when the admin turned it on. */
  get resetEnabled(): boolean {
    return this.enabled && this.deps.config.enable_msisdn_password_reset;
  }

  /** The registration stage for registrationFlows, when phone numbers can be verified. */
  registrationStages(): { msisdn?: string } {
    return this.enabled ? { msisdn: MSISDN_STAGE } : {};
  }

  async requestToken(flow: ThreepidFlow, body: JsonObject, ctx: { ip: string }): Promise<MsisdnTokenResponse> {
    const { config, store, limiter, delivery, publicBaseUrl } = this.deps;
    const params = parseTokenRequest(body, config);
    const country = requireString(body, 'country', 8);
    const number = canonicaliseMsisdn(country, requireString(body, 'phone_number', 64));
    ensureFlowOpen(config, flow, this.deps.passwordsEnabled(), 'phone numbers');
    const limits = this.limits;
    if (!limits) throw unsupportedMedium(config, 'msisdn', params.idServer);
    if (flow === 'password_reset' && !this.resetEnabled) {
      throw new MatrixError(400, 'M_THREEPID_MEDIUM_NOT_SUPPORTED', 'Password reset by phone number is disabled on this server');
    }
    ensureThreepidAllowed(config, 'msisdn', number.msisdn);
    limits.checkNumber(number);
    await limiter.takeAll([`3pid:ip:${addressBucket(ctx.ip)}`, `3pid:address:msisdn:${number.msisdn}`], config.rc_3pid_validation);

    const owner = await store.threepids.findUser('msisdn', number.msisdn);
    const refusal = ownerRefusal(flow, owner, config.request_token_inhibit_3pid_errors, 'Phone number');
    // With inhibit on, a refused request still gets a session that nobody can validate, so the
    // answer looks like any other; but no SMS goes out: a text costs money and has no
    // "already in use" variant, and a reset code must never reach a number no account holds.
    // The send caps are spent all the same, or their 429s would tell which numbers are known.
    const template: SmsTemplateName | null = refusal === undefined ? flow : null;

    const { sid } = await this.sessions.request({
      medium: 'msisdn',
      address: number.msisdn,
      flow,
      clientSecret: params.clientSecret,
      sendAttempt: params.sendAttempt,
      nextLink: params.nextLink,
      withLink: false,
      tokenLifetimeMs: config.sms!.validation_token_lifetime,
      deliver: async (work, d) => {
        await limits.takeSend(work, number.msisdn);
        if (template === null) return;
        await delivery.outbox.within(work).enqueue(
          { channel: 'sms', to: number.msisdn, template, vars: { code: d.code } },
          { dedupeKey: `sms:${d.sid}:${d.sendAttempt}` },
        );
      },
    });
    return { sid, submit_url: absolute(publicBaseUrl, submitTokenPath(flow, 'msisdn')), msisdn: number.msisdn, intl_fmt: number.intlFmt };
  }
}

/**
 * Wires phone number validation when `sms` is configured: the outbox's 'sms' channel and the
 * m.login.msisdn UIA stage. The service exists either way, answering that phone numbers cannot be
 * verified here when SMS is not configured.
 */
export function createMsisdnValidation(deps: MsisdnDeps): MsisdnValidationService {
  const service = new MsisdnValidationService(deps);
  if (service.enabled) {
    deps.delivery.addChannel('sms', smsChannel(deps.config, deps.clock));
    deps.uia.register(new ThreepidStage(MSISDN_STAGE, 'msisdn', service.sessions));
  }
  return service;
}
