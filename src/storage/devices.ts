import type { Kysely, Selectable } from 'kysely';
import type { Database, DevicesTable } from './schema.js';

export type DeviceRow = Selectable<DevicesTable>;

export class DevicesRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /** Creates the device, or keeps the existing one with that ID (its display name is left alone). */
  async upsert(row: { user_id: string; device_id: string; display_name: string | null; created_ts: number; ip: string | null }): Promise<void> {
    await this.db
      .insertInto('devices')
      .values({
        user_id: row.user_id,
        device_id: row.device_id,
        display_name: row.display_name,
        created_ts: row.created_ts,
        last_seen_ts: row.created_ts,
        last_seen_ip: row.ip,
      })
      .onConflict((oc) => oc.columns(['user_id', 'device_id']).doUpdateSet({ last_seen_ts: row.created_ts, last_seen_ip: row.ip }))
      .execute();
  }

  list(userId: string): Promise<DeviceRow[]> {
    return this.db.selectFrom('devices').selectAll().where('user_id', '=', userId).orderBy('device_id').execute();
  }

  get(userId: string, deviceId: string): Promise<DeviceRow | undefined> {
    return this.db.selectFrom('devices').selectAll().where('user_id', '=', userId).where('device_id', '=', deviceId).executeTakeFirst();
  }

  async rename(userId: string, deviceId: string, displayName: string | null): Promise<boolean> {
    const result = await this.db
      .updateTable('devices')
      .set({ display_name: displayName })
      .where('user_id', '=', userId)
      .where('device_id', '=', deviceId)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async touch(userId: string, deviceId: string, ts: number, ip: string): Promise<void> {
    await this.db
      .updateTable('devices')
      .set({ last_seen_ts: ts, last_seen_ip: ip })
      .where('user_id', '=', userId)
      .where('device_id', '=', deviceId)
      .execute();
  }

  /** Deletes the given devices (all of the user's when deviceIds is undefined), except `keep`. */
  async delete(userId: string, deviceIds?: readonly string[], keep?: string): Promise<void> {
    if (deviceIds && deviceIds.length === 0) return;
    let query = this.db.deleteFrom('devices').where('user_id', '=', userId);
    if (deviceIds) query = query.where('device_id', 'in', deviceIds);
    if (keep !== undefined) query = query.where('device_id', '!=', keep);
    await query.execute();
  }
}
