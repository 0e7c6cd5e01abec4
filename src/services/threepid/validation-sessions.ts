import type { Clock } from '../../clock.js';
import { constantTimeEqual, hashToken, hmacToken, randomDigits, randomToken } from '../../crypto/tokens.js';
import { MatrixError, limitExceeded } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import type { SessionKey, ValidationSessionRow } from '../../storage/validation-sessions.js';
import { RateLimiter, perWindow } from '../ratelimiter.js';
import type { Medium } from './address.js';

const DAY_MS = 86_400_000;

/** The operation a validation session is for; a session serves only its own flow. */
export type ThreepidFlow = 'registration' | 'password_reset' | 'add_threepid';
export const THREEPID_FLOWS: readonly ThreepidFlow[] = ['registration', 'password_reset', 'add_threepid'];

/** What a validated, consumed session proves: the shape RegistrationService and friends read. */
export interface ValidatedThreepid {
  medium: Medium;
  address: string;
  validated_ts: number;
}

/** What one validation message carries (the session and its fresh code and link token), handed to the medium's sender inside the session's unit of work. */
export interface ValidationMessage {
  sid: string;
  sendAttempt: number;
  /** Present for media that send a link (email). */
  linkToken: string | null;
  code: string;
  expiresTs: number;
}

export interface RequestArgs {
  medium: Medium;
  address: string;
  flow: ThreepidFlow;
  clientSecret: string;
  sendAttempt: number;
  nextLink: string | null;
  /** Whether this medium's messages carry a link besides the code. */
  withLink: boolean;
  tokenLifetimeMs: number;
  /** Queues the message in `work`, the unit of work that stores the new secrets (`outbox.within(work)`). */
  deliver: (work: Store, message: ValidationMessage) => Promise<void>;
}

export interface ValidationSessionOptions {
  /** Code submissions allowed per session, wrong ones included. */
  maxCodeAttempts: number;
  /** Messages sent per session, whatever the send_attempt. */
  maxSends: number;
  /** How long a validated session may wait for the operation that uses it. */
  validatedLifetimeMs: number;
  codeDigits: number;
  /** Code submissions allowed per address per day, across sessions (max_code_attempts_per_address_per_day). */
  codeAttemptsPerAddressPerDay: number;
}

export const DEFAULT_VALIDATION_SESSION_OPTIONS: Omit<ValidationSessionOptions, 'validatedLifetimeMs' | 'codeAttemptsPerAddressPerDay'> = { maxCodeAttempts: 5, maxSends: 10, codeDigits: 6 };

export const tokenIncorrect = () => new MatrixError(400, 'M_TOKEN_INCORRECT', 'The token is incorrect');
export const sessionExpired = () => new MatrixError(400, 'M_SESSION_EXPIRED', 'This validation session has expired or has been used up; request a new one');

/** Why a link did not work; the page shows the same text whatever the reason. */
export class LinkRejected extends Error {}

/**
 * Validation sessions for any medium: request (idempotent per client secret, address, flow and
 * send_attempt), check a code or a link, and hand a validated session to exactly one operation.
 */
export class ValidationSessionService {
  private readonly limiter: RateLimiter;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly options: ValidationSessionOptions,
  ) {
    this.limiter = new RateLimiter(store.rateLimits, clock);
  }

  private key(args: { clientSecret: string; medium: string; address: string; flow: string }): SessionKey {
    return { clientSecretHash: hashToken(args.clientSecret), medium: args.medium, address: args.address, flow: args.flow };
  }

  private codeHash(clientSecret: string, sid: string, code: string): string {
    return hmacToken(clientSecret, `${sid}:${code}`);
  }

  /** A session that can never validate again: used, or out of code tries. */
  private finished(row: ValidationSessionRow): boolean {
    return row.consumed_ts !== null || (row.validated_ts === null && row.code_attempts >= this.options.maxCodeAttempts);
  }

  /**
   * Finds or creates the session and, when `sendAttempt` is higher than the last one seen, mints a
   * new link and code (the old ones stop working) and delivers them. Returns the sid and whether a
   * message was queued. A finished session asked for a new send is replaced by a fresh one.
   */
  async request(args: RequestArgs): Promise<{ sid: string; sent: boolean }> {
    const key = this.key(args);
    for (let round = 0; round < 3; round++) {
      const now = this.clock.now();
      const linkToken = args.withLink ? randomToken(24) : null;
      const code = randomDigits(this.options.codeDigits);
      const expiresTs = now + args.tokenLifetimeMs;
      // One transaction (one commit) for the common case: create the session, mint, queue the message.
      const outcome = await this.store.transaction(async (tx): Promise<{ row: ValidationSessionRow; sent: boolean | 'finished' } | undefined> => {
        const repo = tx.validationSessions;
        // Most requests start a session, so try the insert first; a repeat finds the existing row.
        const row = (await repo.insertIfAbsent({ sid: randomToken(18), key, nextLink: args.nextLink, now })) ?? (await repo.findByKey(key));
        if (!row) return undefined;
        if (args.sendAttempt <= row.last_send_attempt) return { row, sent: false };
        if (this.finished(row)) return { row, sent: 'finished' };
        const minted = await repo.mint(
          row.sid,
          args.sendAttempt,
          { linkTokenHash: linkToken === null ? null : hashToken(linkToken), codeHash: this.codeHash(args.clientSecret, row.sid, code), expiresTs },
          args.nextLink,
          this.options.maxSends,
        );
        if (minted) await args.deliver(tx, { sid: row.sid, sendAttempt: args.sendAttempt, linkToken, code, expiresTs });
        return { row, sent: minted };
      });
      if (!outcome) continue;
      const { row, sent } = outcome;
      if (sent === 'finished') {
        await this.store.validationSessions.retire(row.sid, key.clientSecretHash);
        continue;
      }
      if (!sent && args.sendAttempt > row.last_send_attempt) {
        const after = await this.store.validationSessions.get(row.sid);
        if (after && after.sends >= this.options.maxSends && args.sendAttempt > after.last_send_attempt && after.validated_ts === null) {
          // The session has had its share of messages; a new session (new client secret) may start later.
          throw limitExceeded(Math.max(1000, (after.token_expires_ts ?? now) - now));
        }
      }
      return { sid: row.sid, sent };
    }
    throw new MatrixError(500, 'M_UNKNOWN', 'Could not create a validation session');
  }

  /** The session if `clientSecret` is its secret and it belongs to this medium (and flow, when given). */
  private async owned(sid: string, clientSecret: string, medium: Medium | undefined, flow: ThreepidFlow | undefined): Promise<ValidationSessionRow | undefined> {
    const row = await this.store.validationSessions.get(sid);
    if (!row || (medium !== undefined && row.medium !== medium) || (flow !== undefined && row.flow !== flow)) return undefined;
    if (!constantTimeEqual(row.client_secret_hash, hashToken(clientSecret))) return undefined;
    return row;
  }

  /** Checks a short code; validates the session when it is right. Every try counts against the cap. */
  async submitCode(args: { sid: string; clientSecret: string; code: string; medium: Medium; flow?: ThreepidFlow }): Promise<void> {
    const row = await this.owned(args.sid, args.clientSecret, args.medium, args.flow);
    if (!row) throw tokenIncorrect();
    const now = this.clock.now();
    const right = row.code_hash !== null && constantTimeEqual(row.code_hash, this.codeHash(args.clientSecret, row.sid, args.code));
    if (row.consumed_ts !== null) throw sessionExpired();
    if (row.validated_ts !== null) {
      if (right) return;
      throw tokenIncorrect();
    }
    if (row.code_hash === null || row.token_expires_ts === null || row.token_expires_ts < now) throw sessionExpired();
    if (!(await this.store.validationSessions.reserveCodeAttempt(row.sid, this.options.maxCodeAttempts))) throw sessionExpired();
    // Five tries per session would be no bound at all for someone who opens session after session
    // for one address; so the address also has a daily budget of tries, across sessions and
    // processes. Both are taken before the code is compared (parallel requests cannot overdraw
    // them), the right code included; a try the address budget refuses still counts in its session.
    await this.limiter.take(`3pid:code:${row.medium}:${row.address}`, perWindow(this.options.codeAttemptsPerAddressPerDay, DAY_MS));
    if (!right) throw tokenIncorrect();
    if (!(await this.store.validationSessions.markValidated(row.sid, now, this.options.maxCodeAttempts))) throw sessionExpired();
  }

  /** The session a link names, if the link still works; never changes anything. */
  async checkLink(args: { sid: string; clientSecret: string; token: string; medium: Medium; flow: ThreepidFlow }): Promise<ValidationSessionRow> {
    const row = await this.owned(args.sid, args.clientSecret, args.medium, args.flow);
    if (!row || row.link_token_hash === null || !constantTimeEqual(row.link_token_hash, hashToken(args.token))) throw new LinkRejected('unknown link');
    if (row.consumed_ts !== null) throw new LinkRejected('used');
    if (row.validated_ts !== null) return row;
    if (row.token_expires_ts === null || row.token_expires_ts < this.clock.now()) throw new LinkRejected('expired');
    if (row.code_attempts >= this.options.maxCodeAttempts) throw new LinkRejected('burnt');
    return row;
  }

  /** Validates the session a link names (the POST from the confirmation page). Repeating it is harmless. */
  async submitLink(args: { sid: string; clientSecret: string; token: string; medium: Medium; flow: ThreepidFlow }): Promise<ValidationSessionRow> {
    const row = await this.checkLink(args);
    if (row.validated_ts !== null) return row;
    if (!(await this.store.validationSessions.markValidated(row.sid, this.clock.now(), this.options.maxCodeAttempts - 1))) {
      const again = await this.checkLink(args);
      if (again.validated_ts === null) throw new LinkRejected('lost a race');
      return again;
    }
    return row;
  }

  /**
   * Uses a validated session for one operation of its flow. Returns 'pending' while it is not
   * validated yet (clients poll); throws M_THREEPID_AUTH_FAILED when it cannot ever serve.
   */
  async consume(args: {
    sid: string;
    clientSecret: string;
    /** Undefined: either medium (adding a 3PID takes both). */
    medium: Medium | undefined;
    flow: ThreepidFlow;
    /** Who uses it (a UIA session ID): the same consumer asking again gets the same answer. */
    consumer: string;
  }): Promise<ValidatedThreepid | 'pending'> {
    const failed = () => new MatrixError(403, 'M_THREEPID_AUTH_FAILED', 'No usable validated session for these credentials');
    const row = await this.owned(args.sid, args.clientSecret, args.medium, args.flow);
    if (!row) throw failed();
    const validated = (r: ValidationSessionRow): ValidatedThreepid => ({ medium: r.medium as Medium, address: r.address, validated_ts: r.validated_ts! });
    if (row.consumed_ts !== null) {
      if (row.consumed_by === args.consumer && row.validated_ts !== null) return validated(row);
      throw failed();
    }
    const now = this.clock.now();
    if (row.validated_ts === null) {
      if (this.finished(row) || row.token_expires_ts === null || row.token_expires_ts < now) throw failed();
      return 'pending';
    }
    if (row.validated_ts + this.options.validatedLifetimeMs < now) throw failed();
    if (!(await this.store.validationSessions.consume(row.sid, now, args.consumer))) throw failed();
    return validated(row);
  }

  /**
   * Deletes old sessions. A session lives at most maxSends token lifetimes plus the validated
   * lifetime, far less than this; a session still in use so late only makes its client start over.
   */
  async prune(olderThanMs = 7 * 86_400_000): Promise<void> {
    await this.store.validationSessions.deleteCreatedBefore(this.clock.now() - olderThanMs);
  }
}
