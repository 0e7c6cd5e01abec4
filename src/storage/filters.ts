import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

export class FiltersRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async get(userId: string, filterId: number): Promise<string | undefined> {
    const row = await this.db.selectFrom('filters').select('filter_json').where('user_id', '=', userId).where('filter_id', '=', filterId).executeTakeFirst();
    return row?.filter_json;
  }

  /** The ID of an identical filter the user already stored, so that clients re-uploading one do not pile up rows. */
  async findSame(userId: string, json: string): Promise<number | undefined> {
    const row = await this.db.selectFrom('filters').select('filter_id').where('user_id', '=', userId).where('filter_json', '=', json).executeTakeFirst();
    return row ? Number(row.filter_id) : undefined;
  }

  /**
   * Stores a filter under the user's next ID, in one statement. Two creations racing for the same ID
   * (possible on Postgres) meet the primary key; the loser's insert does nothing and it takes the next.
   */
  async create(userId: string, json: string): Promise<number> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const row = await this.db
        .insertInto('filters')
        .columns(['user_id', 'filter_id', 'filter_json'])
        .expression((eb) =>
          eb
            .selectFrom('filters')
            .select([eb.val(userId).as('user_id'), sql<number>`coalesce(max(filter_id), -1) + 1`.as('filter_id'), eb.val(json).as('filter_json')])
            .where('user_id', '=', userId),
        )
        .onConflict((oc) => oc.doNothing())
        .returning('filter_id')
        .executeTakeFirst();
      if (row) return Number(row.filter_id);
    }
    throw new Error('could not allocate a filter ID');
  }
}
