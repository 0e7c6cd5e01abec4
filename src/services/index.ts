import type { Clock } from '../clock.js';
import type { Config } from '../config/index.js';
import { PasswordHasher } from '../crypto/passwords.js';
import type { Db } from '../storage/db.js';
import { Store } from '../storage/index.js';
import { AccountService } from './accounts.js';
import { LoginService } from './login.js';
import { PasswordResetService } from './password-reset.js';
import { RateLimiter } from './ratelimiter.js';
import { RegistrationService } from './registration.js';
import { SessionService } from './sessions.js';
import { DummyStage } from './stages/dummy.js';
import { PasswordStage } from './stages/password.js';
import { UiaService } from './uia.js';

/** Every domain service of one homeserver process, wired together. */
export interface Services {
  config: Config;
  clock: Clock;
  store: Store;
  limiter: RateLimiter;
  uia: UiaService;
  sessions: SessionService;
  accounts: AccountService;
  login: LoginService;
  registration: RegistrationService;
  passwordReset: PasswordResetService;
  publicBaseUrl: string;
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

export function createServices(config: Config, db: Db, clock: Clock): Services {
  const store = new Store(db);
  const limiter = new RateLimiter(store.rateLimits, clock);
  const uia = new UiaService(store.uia, clock, config.ui_auth_session_lifetime);
  const hasher = new PasswordHasher({
    algorithm: config.password_config.algorithm,
    bcryptRounds: config.bcrypt_rounds,
    argon2: config.password_config.argon2,
    pepper: config.password_config.pepper,
  });
  const sessions = new SessionService(store, clock, {
    refreshableAccessTokenLifetimeMs: config.refreshable_access_token_lifetime,
    refreshTokenLifetimeMs: config.refresh_token_lifetime,
  });
  const accounts = new AccountService(store, clock, config, hasher, sessions);
  const login = new LoginService(store, config, accounts, sessions, limiter);

  uia.register(new PasswordStage(accounts, store));
  uia.register(new DummyStage());

  const registrationFlows = (): string[][] => (config.enable_registration_without_verification ? [['m.login.dummy']] : []);
  const registration = new RegistrationService(config, accounts, uia, limiter, registrationFlows);
  const passwordReset = new PasswordResetService(store, uia, () => []);

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
    unstableFeatures: {},
    capabilities: () => ({
      'm.change_password': { enabled: accounts.passwordsEnabled() },
      'm.set_displayname': { enabled: true },
      'm.set_avatar_url': { enabled: true },
      'm.3pid_changes': { enabled: false },
      'm.get_login_token': { enabled: false },
    }),
    stoppers: [],
  };
  return services;
}
