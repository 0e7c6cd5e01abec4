import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

/**
 * Per-user stream positions. `advance` takes the user's row lock (Postgres) or the write lock
 * (SQLite) until the transaction ends, so a user's positions are handed out in commit order: a
 * reader that sees head P has every change at or below P committed.
 */
export class StreamsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /** The next position in the user's stream; call inside the transaction that writes the change. */
  async advance(userId: string): Promise<number> {
    const row = await this.db
      .insertInto('user_streams')
      .values({ user_id: userId, position: 1 })
      .onConflict((oc) => oc.column('user_id').doUpdateSet({ position: sql<number>`user_streams.position + 1` }))
      .returning('position')
      .executeTakeFirstOrThrow();
    return Number(row.position);
  }

  async position(userId: string): Promise<number> {
    const row = await this.db.selectFrom('user_streams').select('position').where('user_id', '=', userId).executeTakeFirst();
    return row ? Number(row.position) : 0;
  }
}
