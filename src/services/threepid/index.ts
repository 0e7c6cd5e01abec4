import type { Clock } from '../../clock.js';
import type { Config } from '../../config/index.js';
import type { Delivery } from '../../delivery/index.js';
import type { Store } from '../../storage/index.js';
import type { AccountService } from '../accounts.js';
import type { JsonSigner } from '../rooms/event-hash.js';
import type { RateLimiter } from '../ratelimiter.js';
import { ThreepidStage } from '../stages/threepid.js';
import type { UiaService } from '../uia.js';
import { AccountThreepidService } from './account.js';
import { EmailValidationService } from './email.js';
import { IDENTITY_UNBIND_CHANNEL, IdentityUnbinding } from './identity-unbind.js';
import { createMsisdnValidation, type MsisdnValidationService } from './msisdn.js';
import { DEFAULT_VALIDATION_SESSION_OPTIONS, ValidationSessionService } from './validation-sessions.js';

export const EMAIL_STAGE = 'm.login.email.identity';

export interface ThreepidServices {
  sessions: ValidationSessionService;
  email: EmailValidationService;
  /** Phone numbers, by SMS. */
  msisdn: MsisdnValidationService;
  account: AccountThreepidService;
  /** Unbinding addresses at identity servers (also at deactivation, retried through the outbox). */
  identity: IdentityUnbinding;
}

export interface ThreepidDeps {
  config: Config;
  store: Store;
  clock: Clock;
  limiter: RateLimiter;
  uia: UiaService;
  accounts: AccountService;
  delivery: Delivery;
  publicBaseUrl: string;
  /** The server's signing key, for requests to identity servers (read on first use). */
  signingKey: () => JsonSigner;
}

/** Wires validation sessions, email and phone number validation and account 3PIDs, and registers their UIA stages. */
export function createThreepidServices(deps: ThreepidDeps): ThreepidServices {
  const sessions = new ValidationSessionService(deps.store, deps.clock, {
    ...DEFAULT_VALIDATION_SESSION_OPTIONS,
    codeAttemptsPerAddressPerDay: deps.config.max_code_attempts_per_address_per_day,
    validatedLifetimeMs: deps.config.ui_auth_session_lifetime,
  });
  const passwordsEnabled = () => deps.accounts.passwordsEnabled();
  const email = new EmailValidationService({ ...deps, sessions, outbox: deps.delivery.outbox, templates: deps.delivery.templates, passwordsEnabled });
  const identity = new IdentityUnbinding(deps.config, deps.store, deps.signingKey, deps.delivery.outbox);
  deps.delivery.addChannel(IDENTITY_UNBIND_CHANNEL, identity.channel());
  deps.accounts.useDeactivationUnbinder(identity);
  const account = new AccountThreepidService(deps.config, deps.store, deps.clock, deps.uia, sessions, identity);
  if (email.enabled) deps.uia.register(new ThreepidStage(EMAIL_STAGE, 'email', sessions));
  const msisdn = createMsisdnValidation({ ...deps, passwordsEnabled });
  return { sessions, email, msisdn, account, identity };
}

/**
 * Registration's UIA flows. With registrations_require_3pid, one flow with a stage per required
 * medium; otherwise a flow per medium Myelin can verify, plus m.login.dummy when the admin allows
 * registration without verification. `stages` maps each verifiable medium to its stage.
 */
export function registrationFlows(config: Config, stages: Partial<Record<'email' | 'msisdn', string>>): string[][] {
  if (config.registrations_require_3pid.length > 0) {
    return [config.registrations_require_3pid.map((medium) => stages[medium]).filter((s): s is string => s !== undefined)];
  }
  const flows: string[][] = Object.values(stages).map((stage) => [stage]);
  // A required registration token stands in for verification, as in Synapse (the token stage is added to every flow).
  if (config.enable_registration_without_verification || config.registration_requires_token) flows.push(['m.login.dummy']);
  return flows;
}

/**
 * Synapse's rule: open registration needs some verification unless the admin opts out knowingly.
 * Returns the problem as a sentence, or undefined when the config is fine.
 */
export function registrationConfigProblem(config: Config, verifiable: readonly ('email' | 'msisdn')[]): string | undefined {
  const missing = config.registrations_require_3pid.filter((m) => !verifiable.includes(m));
  if (missing.length > 0) {
    return `registrations_require_3pid names ${missing.join(', ')}, which this server cannot verify (configure ${missing.map((m) => (m === 'email' ? 'email' : 'sms')).join(' and ')})`;
  }
  if (config.enable_registration && !config.enable_registration_without_verification && !config.registration_requires_token && verifiable.length === 0) {
    return 'enable_registration is on but no verification method is configured: configure email (or sms), require a registration token (registration_requires_token: true), or set enable_registration_without_verification: true if you really want open registration';
  }
  return undefined;
}
