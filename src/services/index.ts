import { systemClock, type Clock } from '../clock.js';
import type { Config } from '../config/index.js';
import { ConfigError } from '../config/load.js';
import { PasswordHasher } from '../crypto/passwords.js';
import { createDelivery, type Delivery, type Outbox, type Templates } from '../delivery/index.js';
import type { Db } from '../storage/db.js';
import { Store } from '../storage/index.js';
import { AccountService } from './accounts.js';
import { createClientState, type ClientState } from './e2ee/index.js';
import { LoginService } from './login.js';
import { PasswordResetService } from './password-reset.js';
import { RateLimiter } from './ratelimiter.js';
import { RegistrationService } from './registration.js';
import { DeviceService } from './devices.js';
import { DummyStage } from './stages/dummy.js';
import { PasswordStage } from './stages/password.js';
import { EMAIL_STAGE, createThreepidServices, registrationConfigProblem, registrationFlows as threepidRegistrationFlows, type ThreepidServices } from './threepid/index.js';
import { UiaService } from './uia.js';
import { MSISDN_STAGE, createMsisdnValidation, type MsisdnValidationService } from './threepid/msisdn.js';

/** Every domain service of one homeserver process, wired together. */
export interface Services {
  config: Config;
  clock: Clock;
  store: Store;
  limiter: RateLimiter;
  uia: UiaService;
  sessions: DeviceService;
  accounts: AccountService;
  login: LoginService;
  registration: RegistrationService;
  passwordReset: PasswordResetService;
  publicBaseUrl: string;
  /** Queue a mail (or SMS) here; it is sent by the delivery worker. */
  outbox: Outbox;
  /** Mail and page templates (renderPage for the pages links open). */
  templates: Templates;
  delivery: Delivery;
  /** Validation sessions, email verification, and the 3PIDs of accounts. */
  threepid: ThreepidServices;
  /** Phone number validation by SMS. */
  msisdn: MsisdnValidationService;
  /** Sync, account data, push rules, filters, device keys, to-device messages, key backup, presence. */
  clientState: ClientState;
  unstableFeatures: Record<string, boolean>;
  capabilities(): Record<string, unknown>;
  /** Background work (e.g. the outbox worker) to stop on shutdown. */
  stoppers: (() => Promise<void>)[];
}

export function publicBaseUrlOf(config: Config): string {
  if (config.public_baseurl) return config.public_baseurl.endsWith('/') ? config.public_baseurl : `${config.public_baseurl}/`;
  const listener = config.listeners[0]!;
  return `http://${config.server_name.includes(':') ? config.server_name : `${config.server_name}:${listener.port}`}/`;
}

/** `outboxClock` times the mail and SMS queue, apart from `clock` (see delivery/worker.ts). */
export function createServices(config: Config, db: Db, clock: Clock, outboxClock: Clock = systemClock): Services {
  const store = new Store(db);
  const limiter = new RateLimiter(store.rateLimits, clock);
  const uia = new UiaService(store.uia, clock, config.ui_auth_session_lifetime);
  const hasher = new PasswordHasher({
    algorithm: config.password_config.algorithm,
    bcryptRounds: config.bcrypt_rounds,
    argon2: config.password_config.argon2,
    pepper: config.password_config.pepper,
  });
  const sessions = new DeviceService(store, clock, {
    refreshableAccessTokenLifetimeMs: config.refreshable_access_token_lifetime,
    refreshTokenLifetimeMs: config.refresh_token_lifetime,
  });
  const accounts = new AccountService(store, clock, config, hasher, sessions);
  const login = new LoginService(store, config, accounts, sessions, limiter);

  uia.register(new PasswordStage(accounts, store));
  uia.register(new DummyStage());

  const registrationProblem = registrationConfigProblem(config, [...(config.email ? (['email'] as const) : []), ...(config.sms ? (['msisdn'] as const) : [])]);
  if (registrationProblem) throw new ConfigError(registrationProblem);
  const registrationFlows = (): string[][] => threepidRegistrationFlows(config, { ...(threepid.email.enabled ? { email: EMAIL_STAGE } : {}), ...msisdn.registrationStages() });
  const registration = new RegistrationService(config, accounts, sessions, uia, limiter, registrationFlows);
  const passwordReset = new PasswordResetService(store, uia, () => [...(threepid.email.enabled ? [[EMAIL_STAGE]] : []), ...(msisdn.resetEnabled ? [[MSISDN_STAGE]] : [])]);

  const delivery = createDelivery(config, store, {}, outboxClock);
  const threepid = createThreepidServices({ config, store, clock, limiter, uia, accounts, outbox: delivery.outbox, templates: delivery.templates, publicBaseUrl: publicBaseUrlOf(config) });
  const msisdn = createMsisdnValidation({ config, store, clock, limiter, uia, delivery, publicBaseUrl: publicBaseUrlOf(config), passwordsEnabled: () => accounts.passwordsEnabled() });
  const services: Services = {
    config,
    clock,
    store,
    limiter,
    uia,
    sessions,
    accounts,
    login,
    registration,
    passwordReset,
    publicBaseUrl: publicBaseUrlOf(config),
    outbox: delivery.outbox,
    templates: delivery.templates,
    delivery,
    threepid,
    msisdn,
    clientState: createClientState(config, store, clock, sessions, uia),
    unstableFeatures: {},
    capabilities: () => ({
      'm.change_password': { enabled: accounts.passwordsEnabled() },
      'm.set_displayname': { enabled: true },
      'm.set_avatar_url': { enabled: true },
      'm.3pid_changes': { enabled: config.enable_3pid_changes },
      'm.get_login_token': { enabled: false },
    }),
    stoppers: [],
  };
  services.stoppers.push(() => services.notifier.close());
  return services;
}
