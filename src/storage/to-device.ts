import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface ToDeviceRow {
  stream_pos: number;
  sender: string;
  type: string;
  content: string;
}

export class ToDeviceRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /** Records a sending device's transaction ID; false when it was already recorded. */
  async claimTxn(userId: string, deviceId: string, txnId: string, now: number): Promise<boolean> {
    const row = await this.db
      .insertInto('to_device_txns')
      .values({ user_id: userId, device_id: deviceId, txn_id: txnId, created_ts: now })
      .onConflict((oc) => oc.columns(['user_id', 'device_id', 'txn_id']).doNothing())
      .returning('txn_id')
      .executeTakeFirst();
    return row !== undefined;
  }

  async pruneTxns(before: number): Promise<void> {
    await this.db.deleteFrom('to_device_txns').where('created_ts', '<', before).execute();
  }

  async add(rows: { user_id: string; device_id: string; stream_pos: number; sender: string; type: string; content: string }[]): Promise<void> {
    if (rows.length > 0) await this.db.insertInto('to_device_inbox').values(rows).execute();
  }

  /** Messages for one device in (after, upto], oldest first, at most `limit`. */
  pending(userId: string, deviceId: string, after: number, upto: number, limit: number): Promise<ToDeviceRow[]> {
    return this.db
      .selectFrom('to_device_inbox')
      .select(['stream_pos', 'sender', 'type', 'content'])
      .where('user_id', '=', userId)
      .where('device_id', '=', deviceId)
      .where('stream_pos', '>', after)
      .where('stream_pos', '<=', upto)
      .orderBy('stream_pos')
      .limit(limit)
      .execute();
  }

  /** Deletes what a device has acknowledged (positions up to `upto`). */
  async acknowledge(userId: string, deviceId: string, upto: number): Promise<void> {
    await this.db.deleteFrom('to_device_inbox').where('user_id', '=', userId).where('device_id', '=', deviceId).where('stream_pos', '<=', upto).execute();
  }

  async deleteForDevices(userId: string, deviceIds: readonly string[]): Promise<void> {
    if (deviceIds.length === 0) return;
    await this.db.deleteFrom('to_device_inbox').where('user_id', '=', userId).where('device_id', 'in', deviceIds).execute();
    await this.db.deleteFrom('to_device_txns').where('user_id', '=', userId).where('device_id', 'in', deviceIds).execute();
  }
}
