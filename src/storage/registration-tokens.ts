import { sql, type Kysely, type Selectable } from 'kysely';
import type { RegistrationTokensTable } from './admin-schema.js';
import type { Database } from './schema.js';

export type RegistrationTokenRow = Selectable<RegistrationTokensTable>;

/** A token can still be used: uses left (pending ones counted as used) and not expired. */
const usable = (now: number) => sql<boolean>`(uses_allowed IS NULL OR pending + completed < uses_allowed) AND (expiry_time IS NULL OR expiry_time > ${now})`;

/** Registration tokens and the pending uses of them by open registration sessions. */
export class RegistrationTokensRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /** Every token; `valid` true keeps the usable ones, false the expired or used-up ones. */
  list(now: number, valid?: boolean): Promise<RegistrationTokenRow[]> {
    let query = this.db.selectFrom('registration_tokens').selectAll();
    if (valid === true) query = query.where(usable(now));
    if (valid === false) query = query.where(sql<boolean>`NOT (${usable(now)})`);
    return query.orderBy('created_ts').orderBy('token').execute();
  }

  get(token: string): Promise<RegistrationTokenRow | undefined> {
    return this.db.selectFrom('registration_tokens').selectAll().where('token', '=', token).executeTakeFirst();
  }

  /** False when the token exists already. */
  async create(row: Pick<RegistrationTokenRow, 'token' | 'uses_allowed' | 'expiry_time' | 'created_ts'>): Promise<boolean> {
    const inserted = await this.db
      .insertInto('registration_tokens')
      .values({ ...row, pending: 0, completed: 0 })
      .onConflict((oc) => oc.column('token').doNothing())
      .returning('token')
      .executeTakeFirst();
    return inserted !== undefined;
  }

  async update(token: string, changes: { uses_allowed?: number | null; expiry_time?: number | null }): Promise<RegistrationTokenRow | undefined> {
    if (Object.keys(changes).length > 0) await this.db.updateTable('registration_tokens').set(changes).where('token', '=', token).execute();
    return this.get(token);
  }

  /** Deletes the token and its pending uses; false when there was none. */
  async delete(token: string): Promise<boolean> {
    await this.db.deleteFrom('registration_token_uses').where('token', '=', token).execute();
    const result = await this.db.deleteFrom('registration_tokens').where('token', '=', token).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async isUsable(token: string, now: number): Promise<boolean> {
    const row = await this.db.selectFrom('registration_tokens').select('token').where('token', '=', token).where(usable(now)).executeTakeFirst();
    return row !== undefined;
  }

  /** The token a registration session holds a pending use of. */
  async useOf(sessionId: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('registration_token_uses').select('token').where('session_id', '=', sessionId).executeTakeFirst();
    return row?.token;
  }

  /**
   * Counts one more pending use of the token if it is usable, in one statement: of concurrent
   * callers, only as many as the token has uses left succeed (PostgreSQL re-checks the condition on
   * the row as the previous writer left it; SQLite has one writer at a time).
   */
  async takePending(token: string, now: number): Promise<boolean> {
    const result = await this.db.updateTable('registration_tokens').set({ pending: sql`pending + 1` }).where('token', '=', token).where(usable(now)).executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /** Records that the session holds a pending use of the token; false when it holds one already. */
  async addUse(sessionId: string, token: string, now: number): Promise<boolean> {
    const inserted = await this.db
      .insertInto('registration_token_uses')
      .values({ session_id: sessionId, token, created_ts: now })
      .onConflict((oc) => oc.column('session_id').doNothing())
      .returning('session_id')
      .executeTakeFirst();
    return inserted !== undefined;
  }

  /** Forgets the session's pending use; the token it was of, for the one caller that removed it. */
  async removeUse(sessionId: string): Promise<string | undefined> {
    const row = await this.db.deleteFrom('registration_token_uses').where('session_id', '=', sessionId).returning('token').executeTakeFirst();
    return row?.token;
  }

  /** A pending use became a completed registration. */
  async complete(token: string): Promise<void> {
    await this.db
      .updateTable('registration_tokens')
      .set({ pending: sql`CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END`, completed: sql`completed + 1` })
      .where('token', '=', token)
      .execute();
  }

  /** A pending use ended without a registration (its session expired). */
  async release(token: string): Promise<void> {
    await this.db.updateTable('registration_tokens').set({ pending: sql`CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END` }).where('token', '=', token).execute();
  }

  /** Sessions holding a pending use whose UIA session has expired or is gone. */
  async abandonedUses(now: number, limit = 500): Promise<string[]> {
    const rows = await this.db
      .selectFrom('registration_token_uses as u')
      .leftJoin('uia_sessions as s', 's.session_id', 'u.session_id')
      .select('u.session_id')
      .where((eb) => eb.or([eb('s.session_id', 'is', null), eb('s.expires_ts', '<', now)]))
      .limit(limit)
      .execute();
    return rows.map((r) => r.session_id);
  }
}
