import type { Insertable, Kysely, Selectable } from 'kysely';
import type { Database, UiaSessionsTable } from './schema.js';

export type UiaSessionRow = Selectable<UiaSessionsTable>;

export class UiaSessionsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async create(row: Insertable<UiaSessionsTable>): Promise<void> {
    await this.db.insertInto('uia_sessions').values(row).execute();
  }

  get(sessionId: string): Promise<UiaSessionRow | undefined> {
    return this.db.selectFrom('uia_sessions').selectAll().where('session_id', '=', sessionId).executeTakeFirst();
  }

  async setResults(sessionId: string, results: string): Promise<void> {
    await this.db.updateTable('uia_sessions').set({ results }).where('session_id', '=', sessionId).execute();
  }

  async setParams(sessionId: string, params: string): Promise<void> {
    await this.db.updateTable('uia_sessions').set({ params }).where('session_id', '=', sessionId).where('completed_ts', 'is', null).execute();
  }

  /** Keeps the first secret hash of an open session. */
  async setSecretHash(sessionId: string, hash: string): Promise<void> {
    await this.db
      .updateTable('uia_sessions')
      .set({ secret_hash: hash })
      .where('session_id', '=', sessionId)
      .where('secret_hash', 'is', null)
      .where('completed_ts', 'is', null)
      .execute();
  }

  /** Marks an open session completed and forgets its secret; true only for the one caller that did. */
  async complete(sessionId: string, now: number): Promise<boolean> {
    const result = await this.db
      .updateTable('uia_sessions')
      .set({ completed_ts: now, secret_hash: null })
      .where('session_id', '=', sessionId)
      .where('completed_ts', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async setResult(sessionId: string, result: string): Promise<void> {
    await this.db.updateTable('uia_sessions').set({ result }).where('session_id', '=', sessionId).execute();
  }

  /** Deletes a session; true only for the one caller that actually deleted it. */
  async delete(sessionId: string): Promise<boolean> {
    const result = await this.db.deleteFrom('uia_sessions').where('session_id', '=', sessionId).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async deleteExpired(now: number): Promise<void> {
    await this.db.deleteFrom('uia_sessions').where('expires_ts', '<', now).execute();
  }
}
