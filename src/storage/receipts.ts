import type { Kysely, Selectable } from 'kysely';
import type pg from 'pg';
import { HotQuery, RawHotQuery } from './compiled.js';
import { anyOf } from './any-of.js';
import type { Engine } from './db.js';
import type { ReceiptsTable } from './ephemeral-schema.js';
import type { Database } from './schema.js';
import { inlineParameters } from './simple-query.js';
import { advanceStream } from './streams.js';

export type ReceiptRow = Selectable<ReceiptsTable>;
export type SyncReceipt = Pick<ReceiptRow, 'room_id' | 'receipt_type' | 'user_id' | 'thread_id' | 'event_id' | 'ts'>;

/** Room IDs per statement (SQLite has no arrays: each is a bound variable there). */
const CHUNK = 500;

/** The newest receipt of each room, type, user and thread. */
export class ReceiptsRepo {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly engine: Engine,
    /** PostgreSQL's pool, for putAllAtNextPosition. */
    private readonly pool?: pg.Pool,
  ) {}

  async get(roomId: string, type: string, userId: string, threadId: string): Promise<ReceiptRow | undefined> {
    return (await GET.execute(this.db, roomId, type, userId, threadId)).rows[0];
  }

  /**
   * Stores the receipt at the next global stream position, unless the stored one of its room, type,
   * user and thread is at or after its event (receipts never move backwards). On PostgreSQL the
   * position and the write are one statement: the stream head's lock is held from that round trip
   * to the commit. The position is taken either way; `written` says whether the receipt moved.
   */
  async putAtNextPosition(row: Omit<ReceiptRow, 'stream_pos'>): Promise<{ position: number; written: boolean }> {
    const { room_id, receipt_type, user_id, thread_id, event_id, event_pos, ts } = row;
    if (this.engine === 'postgres') {
      const result = await PUT_AT_NEXT_POSITION_PG.execute(this.db, [room_id, receipt_type, user_id, thread_id, event_id, event_pos, ts]);
      return { position: Number(result.rows[0]!.position), written: Number(result.rows[0]!.written) === 1 };
    }
    const position = await advanceStream(this.db);
    const result = await PUT_IF_FORWARD.execute(this.db, room_id, receipt_type, user_id, thread_id, event_id, event_pos, ts, position);
    return { position, written: Number(result.numAffectedRows ?? 0) > 0 };
  }

  /**
   * PostgreSQL, outside any transaction: the receipts at one new global position, each followed by
   * its `then` (statements whose values are written in, that read the position off the stream head),
   * in one transaction sent as one simple query. One round trip: the stream head's lock is held only
   * while PostgreSQL runs them and commits, never across a round trip to this process, and taken
   * once for them all. Each statement reads a fresh snapshot. Per receipt: whether it moved.
   */
  async putAllAtNextPosition(receipts: readonly { row: Omit<ReceiptRow, 'stream_pos'>; then: readonly string[] }[]): Promise<{ position: number; written: boolean[] }> {
    if (!this.pool) throw new Error('putAllAtNextPosition is for PostgreSQL');
    const statements = ['UPDATE stream_head SET position = position + 1 RETURNING position'];
    const puts: number[] = [];
    for (const { row, then } of receipts) {
      const { room_id, receipt_type, user_id, thread_id, event_id, event_pos, ts } = row;
      puts.push(statements.length);
      statements.push(inlineParameters({ sql: PUT_AT_HEAD_SQL, parameters: [room_id, receipt_type, user_id, thread_id, event_id, event_pos, ts] }), ...then);
    }
    // A query of several statements runs them as one transaction (committed at its end, rolled back whole on an error).
    const results = (await this.pool.query(statements.join(';\n'))) as unknown as pg.QueryResult<{ position: number }>[];
    return { position: Number(results[0]!.rows[0]!.position), written: puts.map((i) => (results[i]!.rowCount ?? 0) > 0) };
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

const GET = new HotQuery((db: Kysely<Database>, roomId: string, type: string, userId: string, threadId: string) =>
  db.selectFrom('receipts').selectAll().where('room_id', '=', roomId).where('receipt_type', '=', type).where('user_id', '=', userId).where('thread_id', '=', threadId),
);

const PUT_IF_FORWARD = new HotQuery(
  (db: Kysely<Database>, room_id: string, receipt_type: string, user_id: string, thread_id: string, event_id: string, event_pos: number, ts: number, stream_pos: number) =>
    db
      .insertInto('receipts')
      .values({ room_id, receipt_type, user_id, thread_id, event_id, event_pos, ts, stream_pos })
      .onConflict((oc) =>
        oc
          .columns(['room_id', 'receipt_type', 'user_id', 'thread_id'])
          .doUpdateSet((eb) => ({ event_id: eb.ref('excluded.event_id'), event_pos: eb.ref('excluded.event_pos'), ts: eb.ref('excluded.ts'), stream_pos: eb.ref('excluded.stream_pos') }))
          .where('receipts.event_pos', '<', (eb) => eb.ref('excluded.event_pos')),
      ),
);

/** The position and the receipt in one round trip (see putAtNextPosition); `written` is 0 when a receipt at or after it was kept. */
const PUT_AT_NEXT_POSITION_PG = new RawHotQuery<{ position: number; written: number }>(
  `WITH p AS (UPDATE stream_head SET position = position + 1 RETURNING position),
  w AS (
    INSERT INTO receipts (room_id, receipt_type, user_id, thread_id, event_id, event_pos, ts, stream_pos)
    SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::bigint, $7::bigint, p.position FROM p
    ON CONFLICT (room_id, receipt_type, user_id, thread_id) DO UPDATE
      SET event_id = excluded.event_id, event_pos = excluded.event_pos, ts = excluded.ts, stream_pos = excluded.stream_pos
      WHERE receipts.event_pos < excluded.event_pos
    RETURNING 1
  )
  SELECT p.position AS position, (SELECT count(*) FROM w)::int AS written FROM p`,
);

/** The receipt at the position its transaction took already (the stream head), unless a receipt at or after it is kept. */
const PUT_AT_HEAD_SQL = `INSERT INTO receipts (room_id, receipt_type, user_id, thread_id, event_id, event_pos, ts, stream_pos)
  SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::bigint, $7::bigint, position FROM stream_head
  ON CONFLICT (room_id, receipt_type, user_id, thread_id) DO UPDATE
    SET event_id = excluded.event_id, event_pos = excluded.event_pos, ts = excluded.ts, stream_pos = excluded.stream_pos
    WHERE receipts.event_pos < excluded.event_pos`;
