import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * Read receipts and typing notifications, both on the global stream so that one sync token covers
 * them (and every process sharing the database agrees on it).
 *   - receipts: the newest receipt per room, type, user and thread ('' for an unthreaded one), with
 *     the position of the event it points at, so that a receipt never moves backwards;
 *   - room_typing: who types where until when; a row that stopped (or expired) stays as a tombstone
 *     with the position of that change, so an incremental sync can tell the room's list changed.
 * Both are read by stream position (incremental syncs) and by room (initial syncs).
 */
export async function up(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('receipts')
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('receipt_type', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('thread_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('event_pos', 'bigint', (c) => c.notNull())
    .addColumn('ts', 'bigint', (c) => c.notNull())
    .addColumn('stream_pos', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('receipts_pk', ['room_id', 'receipt_type', 'user_id', 'thread_id'])
    .execute();
  await db.schema.createIndex('receipts_stream').on('receipts').column('stream_pos').execute();

  await db.schema
    .createTable('room_typing')
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('typing', 'integer', (c) => c.notNull())
    .addColumn('expires_ts', 'bigint', (c) => c.notNull())
    .addColumn('stream_pos', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('room_typing_pk', ['room_id', 'user_id'])
    .execute();
  await db.schema.createIndex('room_typing_stream').on('room_typing').column('stream_pos').execute();
  await sql`CREATE INDEX room_typing_expiry ON room_typing (expires_ts) WHERE typing = 1`.execute(db);
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.dropTable('room_typing').execute();
  await db.schema.dropTable('receipts').execute();
}
