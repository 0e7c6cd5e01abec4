import type { Kysely, Selectable } from 'kysely';
import type { Database, UiaSessionsTable } from './schema.js';

export type UiaSessionRow = Selectable<UiaSessionsTable>;

export class UiaSessionsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async create(row: UiaSessionRow): Promise<void> {
    await this.db.insertInto('uia_sessions').values(row).execute();
  }

  get(sessionId: string): Promise<UiaSessionRow | undefined> {
    return this.db.selectFrom('uia_sessions').selectAll().where('session_id', '=', sessionId).executeTakeFirst();
  }

  async setResults(sessionId: string, results: string): Promise<void> {
    await this.db.updateTable('uia_sessions').set({ results }).where('session_id', '=', sessionId).execute();
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
