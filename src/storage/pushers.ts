import type { Kysely, Selectable } from 'kysely';
import type { PushersTable } from './push-schema.js';
import type { Database } from './schema.js';

export type PusherRow = Selectable<PushersTable>;

export class PushersRepo {
  constructor(private readonly db: Kysely<Database>) {}

  list(userId: string): Promise<PusherRow[]> {
    return this.db.selectFrom('pushers').selectAll().where('user_id', '=', userId).orderBy('app_id').orderBy('pushkey').execute();
  }

  async exists(userId: string, appId: string, pushkey: string): Promise<boolean> {
    const row = await this.db.selectFrom('pushers').select('kind').where('user_id', '=', userId).where('app_id', '=', appId).where('pushkey', '=', pushkey).executeTakeFirst();
    return row !== undefined;
  }

  /** The http pushers of these users. */
  async httpPushersOf(userIds: readonly string[]): Promise<PusherRow[]> {
    const rows: PusherRow[] = [];
    for (let i = 0; i < userIds.length; i += 500) {
      const chunk = userIds.slice(i, i + 500);
      rows.push(...(await this.db.selectFrom('pushers').selectAll().where('kind', '=', 'http').where('user_id', 'in', chunk).execute()));
    }
    return rows;
  }

  /** Creates or replaces the user's pusher with this app ID and pushkey. */
  async upsert(row: PusherRow): Promise<void> {
    const { user_id: _u, app_id: _a, pushkey: _p, ...rest } = row;
    await this.db
      .insertInto('pushers')
      .values(row)
      .onConflict((oc) => oc.columns(['user_id', 'app_id', 'pushkey']).doUpdateSet(rest))
      .execute();
  }

  async delete(userId: string, appId: string, pushkey: string): Promise<number> {
    const result = await this.db.deleteFrom('pushers').where('user_id', '=', userId).where('app_id', '=', appId).where('pushkey', '=', pushkey).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** Deletes other users' pushers with this app ID and pushkey (a pushkey moved to another account). */
  async deleteForOtherUsers(userId: string, appId: string, pushkey: string): Promise<void> {
    await this.db.deleteFrom('pushers').where('app_id', '=', appId).where('pushkey', '=', pushkey).where('user_id', '!=', userId).execute();
  }

  /** Deletes every pusher with this app ID and pushkey (the gateway rejected the pushkey). */
  async deleteEverywhere(appId: string, pushkey: string): Promise<void> {
    await this.db.deleteFrom('pushers').where('app_id', '=', appId).where('pushkey', '=', pushkey).execute();
  }

  async deleteForDevices(userId: string, deviceIds: readonly string[]): Promise<void> {
    if (deviceIds.length === 0) return;
    await this.db.deleteFrom('pushers').where('user_id', '=', userId).where('device_id', 'in', deviceIds).execute();
  }
}
