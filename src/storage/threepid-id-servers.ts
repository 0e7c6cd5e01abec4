import type { Kysely, Selectable } from 'kysely';
import type { Database } from './schema.js';

/** One address of a user bound at one identity server (`id_server` as trusted: host[:port]). */
export interface UserThreepidIdServerTable {
  user_id: string;
  medium: string;
  address: string;
  id_server: string;
}

export type ThreepidBindingRow = Selectable<UserThreepidIdServerTable>;

/** The identity servers each address of a user was bound to through this server. */
export class ThreepidIdServersRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /** Records a binding; recording it again is a no-op. */
  async add(row: ThreepidBindingRow): Promise<void> {
    await this.db
      .insertInto('user_threepid_id_server')
      .values(row)
      .onConflict((oc) => oc.columns(['user_id', 'medium', 'address', 'id_server']).doNothing())
      .execute();
  }

  /** The identity servers this address of the user is bound to, in name order. */
  async servers(userId: string, medium: string, address: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('user_threepid_id_server')
      .select('id_server')
      .where('user_id', '=', userId)
      .where('medium', '=', medium)
      .where('address', '=', address)
      .orderBy('id_server')
      .execute();
    return rows.map((r) => r.id_server);
  }

  /** Every binding of the user. */
  list(userId: string): Promise<ThreepidBindingRow[]> {
    return this.db.selectFrom('user_threepid_id_server').selectAll().where('user_id', '=', userId).orderBy('medium').orderBy('address').orderBy('id_server').execute();
  }

  async remove(row: ThreepidBindingRow): Promise<void> {
    await this.db
      .deleteFrom('user_threepid_id_server')
      .where('user_id', '=', row.user_id)
      .where('medium', '=', row.medium)
      .where('address', '=', row.address)
      .where('id_server', '=', row.id_server)
      .execute();
  }

  /** Forgets every binding of the user, returning them. */
  removeAll(userId: string): Promise<ThreepidBindingRow[]> {
    return this.db.deleteFrom('user_threepid_id_server').where('user_id', '=', userId).returningAll().execute();
  }
}
