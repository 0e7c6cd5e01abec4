import { randomInt } from 'node:crypto';
import type { Clock } from '../../clock.js';
import type { Config } from '../../config/index.js';
import { MatrixError, forbidden, invalidParam, notFound } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import type { RegistrationTokenRow } from '../../storage/registration-tokens.js';
import { addressBucket, type RateLimiter } from '../ratelimiter.js';

/** The UIA stage of MSC3231, in the spec since v1.2. */
export const REGISTRATION_TOKEN_STAGE = 'm.login.registration_token';

/** Synapse's grammar for a registration token. */
export const TOKEN_GRAMMAR = /^[A-Za-z0-9._~-]{1,64}$/;
const TOKEN_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-';

/** A registration token as the admin API shows it. */
export interface RegistrationTokenView {
  token: string;
  uses_allowed: number | null;
  pending: number;
  completed: number;
  expiry_time: number | null;
}

export interface NewRegistrationToken {
  token?: string | undefined;
  length?: number | undefined;
  uses_allowed?: number | null | undefined;
  expiry_time?: number | null | undefined;
}

export interface RegistrationTokenChanges {
  uses_allowed?: number | null;
  expiry_time?: number | null;
}

const invalidToken = () => new MatrixError(401, 'M_UNAUTHORIZED', 'Invalid registration token');

function view(row: RegistrationTokenRow): RegistrationTokenView {
  const nullable = (value: number | null) => (value === null ? null : Number(value));
  return { token: row.token, uses_allowed: nullable(row.uses_allowed), pending: Number(row.pending), completed: Number(row.completed), expiry_time: nullable(row.expiry_time) };
}

/**
 * With registration_requires_token, every registration flow starts with the token stage (as
 * Synapse builds its flows): with registrations_require_3pid a registration needs both the token
 * and the verified address.
 */
export function withRegistrationToken(config: Config, flows: string[][]): string[][] {
  if (!config.registration_requires_token) return flows;
  return flows.map((flow) => [REGISTRATION_TOKEN_STAGE, ...flow.filter((stage) => stage !== REGISTRATION_TOKEN_STAGE)]);
}

/**
 * Registration tokens: the admin's CRUD, the validity check clients make, and their use by
 * registrations. A registration that passes the token stage holds a pending use, counted against
 * uses_allowed, until it completes (pending becomes completed, in the transaction that creates
 * the account) or its UIA session expires (the use is released).
 */
export class RegistrationTokenService {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly config: Config,
    private readonly limiter: RateLimiter,
  ) {}

  async list(valid?: boolean): Promise<{ registration_tokens: RegistrationTokenView[] }> {
    return { registration_tokens: (await this.store.registrationTokens.list(this.clock.now(), valid)).map(view) };
  }

  async get(token: string): Promise<RegistrationTokenView> {
    const row = await this.store.registrationTokens.get(token);
    if (!row) throw notFound(`No such registration token: ${token.slice(0, 100)}`);
    return view(row);
  }

  private checkExpiry(expiryTime: number | null | undefined): void {
    if (expiryTime !== undefined && expiryTime !== null && expiryTime <= this.clock.now()) throw invalidParam('expiry_time must not be in the past');
  }

  async create(req: NewRegistrationToken): Promise<RegistrationTokenView> {
    this.checkExpiry(req.expiry_time);
    const row = { uses_allowed: req.uses_allowed ?? null, expiry_time: req.expiry_time ?? null, created_ts: this.clock.now() };
    if (req.token !== undefined) {
      if (!(await this.store.registrationTokens.create({ token: req.token, ...row }))) throw invalidParam(`Token already exists: ${req.token}`);
      return this.get(req.token);
    }
    const length = req.length ?? 16;
    for (let attempt = 0; attempt < 10; attempt++) {
      let token = '';
      for (let i = 0; i < length; i++) token += TOKEN_ALPHABET[randomInt(TOKEN_ALPHABET.length)];
      if (await this.store.registrationTokens.create({ token, ...row })) return this.get(token);
    }
    throw new MatrixError(500, 'M_UNKNOWN', 'Could not generate a unique token; try a greater length');
  }

  async update(token: string, changes: RegistrationTokenChanges): Promise<RegistrationTokenView> {
    this.checkExpiry(changes.expiry_time);
    const row = await this.store.registrationTokens.update(token, changes);
    if (!row) throw notFound(`No such registration token: ${token.slice(0, 100)}`);
    return view(row);
  }

  async delete(token: string): Promise<void> {
    const deleted = await this.store.transaction((tx) => tx.registrationTokens.delete(token));
    if (!deleted) throw notFound(`No such registration token: ${token.slice(0, 100)}`);
  }

  /** GET /register/m.login.registration_token/validity: rate limited per client address, as the spec asks. */
  async validity(token: string, ip: string): Promise<{ valid: boolean }> {
    await this.limiter.take(`registration_token_validity:${addressBucket(ip)}`, this.config.rc_registration_token_validity);
    if (!this.config.enable_registration) throw forbidden('Registration is not enabled on this homeserver.');
    return { valid: TOKEN_GRAMMAR.test(token) && (await this.store.registrationTokens.isUsable(token, this.clock.now())) };
  }

  /**
   * The token stage of one registration session: takes a pending use of the token, once per
   * session (a session that already holds one passes again with the same token). Of concurrent
   * sessions, only as many as the token has uses left get one.
   */
  async use(sessionId: string, token: string): Promise<void> {
    if (!TOKEN_GRAMMAR.test(token)) throw invalidToken();
    const now = this.clock.now();
    await this.store.transaction(async (tx) => {
      if (!(await tx.registrationTokens.addUse(sessionId, token, now))) {
        if ((await tx.registrationTokens.useOf(sessionId)) === token) return;
        throw new MatrixError(401, 'M_UNAUTHORIZED', 'This session has already used another registration token');
      }
      // Throwing undoes the use recorded just above: the transaction rolls back.
      if (!(await tx.registrationTokens.takePending(token, now))) throw invalidToken();
    });
  }

  /** In the transaction creating the account: the session's pending use becomes a completed one. */
  async complete(work: Store, sessionId: string): Promise<void> {
    const token = await work.registrationTokens.removeUse(sessionId);
    if (token !== undefined) await work.registrationTokens.complete(token);
  }

  /** Releases the pending uses of registration sessions that expired without completing. */
  async releaseAbandoned(): Promise<number> {
    const sessions = await this.store.registrationTokens.abandonedUses(this.clock.now());
    for (const sessionId of sessions) {
      await this.store.transaction(async (tx) => {
        const token = await tx.registrationTokens.removeUse(sessionId);
        if (token !== undefined) await tx.registrationTokens.release(token);
      });
    }
    return sessions.length;
  }
}
