import type { Kysely } from 'kysely';
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

  async nextId(userId: string): Promise<number> {
    const row = await this.db.selectFrom('filters').select((eb) => eb.fn.max('filter_id').as('max')).where('user_id', '=', userId).executeTakeFirst();
    return Number(row?.max ?? -1) + 1;
  }

  async insert(userId: string, filterId: number, json: string): Promise<void> {
    await this.db.insertInto('filters').values({ user_id: userId, filter_id: filterId, filter_json: json }).execute();
  }
}
