import { sql, type Kysely, type Selectable } from 'kysely';
import { HotQuery } from './compiled.js';
import type { Database } from './schema.js';

/**
 * 3PID validation sessions (email or phone). Secrets are stored only as hashes: the client secret
 * and link token as SHA-256, the short code as an HMAC keyed with the client secret.
 */
export interface ThreepidValidationSessionsTable {
  sid: string;
  medium: string;
  /** Canonical address. */
  address: string;
  /** The operation the session may serve: registration, password_reset or add_threepid. */
  flow: string;
  /** SHA-256 of the client secret; `retired:<sid>` once a newer session took its place. */
  client_secret_hash: string;
  last_send_attempt: number;
  link_token_hash: string | null;
  code_hash: string | null;
  /** When the current link and code stop working. */
  token_expires_ts: number | null;
  next_link: string | null;
  /** Code submissions so far (each one counts, so concurrent guesses cannot exceed the cap). */
  code_attempts: number;
  /** Messages sent for this session. */
  sends: number;
  created_ts: number;
  validated_ts: number | null;
  /** Set once, by the one operation (registration, reset, add) that used the validated session. */
  consumed_ts: number | null;
  /** What used it (a UIA session ID), so a retry within that same operation still sees it. */
  consumed_by: string | null;
}

export type ValidationSessionRow = Selectable<ThreepidValidationSessionsTable>;

export interface SessionKey {
  clientSecretHash: string;
  medium: string;
  address: string;
  flow: string;
}

export interface MintedSecrets {
  linkTokenHash: string | null;
  codeHash: string;
  expiresTs: number;
}

// The statements of every requestToken, compiled once.
const INSERT_IF_ABSENT = new HotQuery(
  (db: Kysely<Database>, sid: string, medium: string, address: string, flow: string, clientSecretHash: string, nextLink: string | null, now: number) =>
    db
      .insertInto('threepid_validation_sessions')
      .values({
        sid,
        medium,
        address,
        flow,
        client_secret_hash: clientSecretHash,
        last_send_attempt: -1,
        link_token_hash: null,
        code_hash: null,
        token_expires_ts: null,
        next_link: nextLink,
        code_attempts: 0,
        sends: 0,
        created_ts: now,
        validated_ts: null,
        consumed_ts: null,
        consumed_by: null,
      })
      .onConflict((oc) => oc.columns(['client_secret_hash', 'medium', 'address', 'flow']).doNothing())
      .returningAll(),
);

const FIND_BY_KEY = new HotQuery((db: Kysely<Database>, clientSecretHash: string, medium: string, address: string, flow: string) =>
  db
    .selectFrom('threepid_validation_sessions')
    .selectAll()
    .where('client_secret_hash', '=', clientSecretHash)
    .where('medium', '=', medium)
    .where('address', '=', address)
    .where('flow', '=', flow),
);

const MINT = new HotQuery(
  (
    db: Kysely<Database>,
    sid: string,
    sendAttempt: number,
    linkTokenHash: string | null,
    codeHash: string,
    expiresTs: number,
    nextLink: string | null,
    maxSends: number,
  ) =>
    db
      .updateTable('threepid_validation_sessions')
      .set({
        last_send_attempt: sendAttempt,
        link_token_hash: linkTokenHash,
        code_hash: codeHash,
        token_expires_ts: expiresTs,
        next_link: nextLink,
        sends: sql<number>`sends + 1`,
      })
      .where('sid', '=', sid)
      .where('last_send_attempt', '<', sendAttempt)
      .where('sends', '<', maxSends)
      .where('validated_ts', 'is', null)
      .where('consumed_ts', 'is', null),
);

export class ValidationSessionsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Creates the session unless one with the same key exists (the unique index settles races).
   * Returns the new row, or undefined when one existed.
   */
  async insertIfAbsent(row: { sid: string; key: SessionKey; nextLink: string | null; now: number }): Promise<ValidationSessionRow | undefined> {
    const { rows } = await INSERT_IF_ABSENT.execute(this.db, row.sid, row.key.medium, row.key.address, row.key.flow, row.key.clientSecretHash, row.nextLink, row.now);
    return rows[0];
  }

  async findByKey(key: SessionKey): Promise<ValidationSessionRow | undefined> {
    const { rows } = await FIND_BY_KEY.execute(this.db, key.clientSecretHash, key.medium, key.address, key.flow);
    return rows[0];
  }

  get(sid: string): Promise<ValidationSessionRow | undefined> {
    return this.db.selectFrom('threepid_validation_sessions').selectAll().where('sid', '=', sid).executeTakeFirst();
  }

  /**
   * Replaces the session's link and code when `sendAttempt` is higher than the last one, it is not
   * validated yet, and it has sent fewer than `maxSends` messages. Only one of several concurrent
   * callers with the same attempt gets true: the conditional update is the lock.
   */
  async mint(sid: string, sendAttempt: number, secrets: MintedSecrets, nextLink: string | null, maxSends: number): Promise<boolean> {
    const result = await MINT.execute(this.db, sid, sendAttempt, secrets.linkTokenHash, secrets.codeHash, secrets.expiresTs, nextLink, maxSends);
    return Number(result.numAffectedRows ?? 0) > 0;
  }

  /** Frees a finished (used or burnt) session's key so a new session can take it. */
  async retire(sid: string, clientSecretHash: string): Promise<void> {
    await this.db
      .updateTable('threepid_validation_sessions')
      .set({ client_secret_hash: `retired:${sid}` })
      .where('sid', '=', sid)
      .where('client_secret_hash', '=', clientSecretHash)
      .execute();
  }

  /** Counts one code submission; false when the session has used up its `max` tries. */
  async reserveCodeAttempt(sid: string, max: number): Promise<boolean> {
    const result = await this.db
      .updateTable('threepid_validation_sessions')
      .set({ code_attempts: sql<number>`code_attempts + 1` })
      .where('sid', '=', sid)
      .where('code_attempts', '<', max)
      .where('validated_ts', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /** Marks the session validated while its tokens are live and it has used at most `maxAttempts` tries. */
  async markValidated(sid: string, now: number, maxAttempts: number): Promise<boolean> {
    const result = await this.db
      .updateTable('threepid_validation_sessions')
      .set({ validated_ts: now })
      .where('sid', '=', sid)
      .where('validated_ts', 'is', null)
      .where('consumed_ts', 'is', null)
      .where('token_expires_ts', '>=', now)
      .where('code_attempts', '<=', maxAttempts)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /** Uses a validated session; true only for the one caller that did. */
  async consume(sid: string, now: number, consumer: string): Promise<boolean> {
    const result = await this.db
      .updateTable('threepid_validation_sessions')
      .set({ consumed_ts: now, consumed_by: consumer })
      .where('sid', '=', sid)
      .where('consumed_ts', 'is', null)
      .where('validated_ts', 'is not', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async deleteCreatedBefore(ts: number): Promise<void> {
    await this.db.deleteFrom('threepid_validation_sessions').where('created_ts', '<', ts).execute();
  }
}
