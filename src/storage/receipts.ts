import type { Kysely, Selectable } from 'kysely';
import { anyOf } from './any-of.js';
import type { Engine } from './db.js';
import type { ReceiptsTable } from './ephemeral-schema.js';
import type { Database } from './schema.js';

export type ReceiptRow = Selectable<ReceiptsTable>;
export type SyncReceipt = Pick<ReceiptRow, 'room_id' | 'receipt_type' | 'user_id' | 'thread_id' | 'event_id' | 'ts'>;

/** Room IDs per statement (SQLite has no arrays: each is a bound variable there). */
const CHUNK = 500;

/** The newest receipt of each room, type, user and thread. */
export class ReceiptsRepo {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly engine: Engine,
  ) {}

  get(roomId: string, type: string, userId: string, threadId: string): Promise<ReceiptRow | undefined> {
    return this.db
      .selectFrom('receipts')
      .selectAll()
      .where('room_id', '=', roomId)
      .where('receipt_type', '=', type)
      .where('user_id', '=', userId)
      .where('thread_id', '=', threadId)
      .executeTakeFirst();
  }

  async put(row: ReceiptRow): Promise<void> {
    const { event_id, event_pos, ts, stream_pos } = row;
    await this.db
      .insertInto('receipts')
      .values(row)
      .onConflict((oc) => oc.columns(['room_id', 'receipt_type', 'user_id', 'thread_id']).doUpdateSet({ event_id, event_pos, ts, stream_pos }))
      .execute();
  }

  /** A user's receipts of these types in a room, every thread. */
  ofUser(roomId: string, userId: string, types: readonly string[]): Promise<ReceiptRow[]> {
    return this.db.selectFrom('receipts').selectAll().where('room_id', '=', roomId).where('receipt_type', 'in', types).where('user_id', '=', userId).execute();
  }

  /**
   * The receipts of these rooms that `viewer` may see (every public one, and their own private
   * ones) whose position is in (after, upto]; `after` 0 reads every receipt of the rooms.
   */
  async visibleIn(roomIds: readonly string[], after: number, upto: number, viewer: string): Promise<SyncReceipt[]> {
    const out: SyncReceipt[] = [];
    for (let i = 0; i < roomIds.length; i += CHUNK) {
      const rows = await this.db
        .selectFrom('receipts')
        .select(['room_id', 'receipt_type', 'user_id', 'thread_id', 'event_id', 'ts'])
        .where(anyOf(this.engine, 'room_id', roomIds.slice(i, i + CHUNK)))
        .where('stream_pos', '>', after)
        .where('stream_pos', '<=', upto)
        .where((eb) => eb.or([eb('receipt_type', '<>', 'm.read.private'), eb('user_id', '=', viewer)]))
        .execute();
      out.push(...rows);
    }
    return out;
  }
}
