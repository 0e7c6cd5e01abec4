import type { Kysely, Selectable } from 'kysely';
import { HotQuery } from './compiled.js';
import type { Database, UserThreepidsTable } from './schema.js';

export type UserThreepidRow = Selectable<UserThreepidsTable>;

const FIND_USER = new HotQuery((db: Kysely<Database>, medium: string, address: string) =>
  db.selectFrom('user_threepids').select('user_id').where('medium', '=', medium).where('address', '=', address),
);

/** The 3PIDs bound to local accounts. Addresses are stored already canonicalised. */
export class UserThreepidsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  list(userId: string): Promise<UserThreepidRow[]> {
    return this.db.selectFrom('user_threepids').selectAll().where('user_id', '=', userId).orderBy('added_ts').execute();
  }

  async findUser(medium: string, address: string): Promise<string | undefined> {
    const { rows } = await FIND_USER.execute(this.db, medium, address);
    return rows[0]?.user_id;
  }

  /**
   * Adds the 3PID; false when another account holds it. Re-adding one's own 3PID is a no-op success.
   * ON CONFLICT keeps a surrounding Postgres transaction usable, where a caught error would abort it.
   */
  async add(row: UserThreepidRow): Promise<boolean> {
    const inserted = await this.db
      .insertInto('user_threepids')
      .values(row)
      .onConflict((oc) => oc.columns(['medium', 'address']).doNothing())
      .returning('user_id')
      .executeTakeFirst();
    return inserted !== undefined || (await this.findUser(row.medium, row.address)) === row.user_id;
  }

  /**
   * Removes the address from the account, and, as Synapse does, the account's email pushers that
   * mail it: they may only mail the account's own addresses.
   */
  async delete(userId: string, medium: string, address: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('user_threepids')
      .where('user_id', '=', userId)
      .where('medium', '=', medium)
      .where('address', '=', address)
      .executeTakeFirst();
    if (medium === 'email') await this.db.deleteFrom('pushers').where('user_id', '=', userId).where('kind', '=', 'email').where('pushkey', '=', address).execute();
    return Number(result.numDeletedRows) > 0;
  }

  /** Removes every address of the account, and its email pushers with them. */
  async deleteAll(userId: string): Promise<UserThreepidRow[]> {
    await this.db.deleteFrom('pushers').where('user_id', '=', userId).where('kind', '=', 'email').execute();
    return this.db.deleteFrom('user_threepids').where('user_id', '=', userId).returningAll().execute();
  }
}
