import { PostgresAdapter, sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * Notification counts evaluated in the event's own transaction (see PushEvaluator):
 * - push_counts per thread (`main` for the main timeline, else the thread root's ID), with the
 *   stream position of the last change, so that a sync sees which rooms' counts changed;
 * - push_notifications keyed by (user, position) with the event's thread, no second index: the key
 *   serves GET /notifications and recounts, and on SQLite the table has no rowid, so that each
 *   notified user costs one B-tree insert in the send's write instead of three.
 * Existing rows are kept (as the main timeline's).
 */
export async function up(db: AnyDb): Promise<void> {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  await db.schema
    .createTable('push_counts_v2')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('thread_id', 'text', (c) => c.notNull())
    .addColumn('notification_count', 'integer', (c) => c.notNull())
    .addColumn('highlight_count', 'integer', (c) => c.notNull())
    .addColumn('stream_pos', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('push_counts_v2_pk', ['user_id', 'room_id', 'thread_id'])
    .execute();
  await sql`INSERT INTO push_counts_v2 (user_id, room_id, thread_id, notification_count, highlight_count, stream_pos)
    SELECT user_id, room_id, 'main', notification_count, highlight_count, 0 FROM push_counts`.execute(db);
  await db.schema.dropTable('push_counts').execute();
  await db.schema.alterTable('push_counts_v2').renameTo('push_counts').execute();

  let notifications = db.schema
    .createTable('push_notifications_v2')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('stream_pos', 'bigint', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('thread_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('actions', 'text', (c) => c.notNull())
    .addColumn('highlight', 'integer', (c) => c.notNull())
    .addColumn('ts', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('push_notifications_v2_pk', ['user_id', 'stream_pos']);
  if (!postgres) notifications = notifications.modifyEnd(sql`WITHOUT ROWID`);
  await notifications.execute();
  await sql`INSERT INTO push_notifications_v2 (user_id, stream_pos, room_id, thread_id, event_id, actions, highlight, ts)
    SELECT user_id, stream_pos, room_id, 'main', event_id, actions, highlight, ts FROM push_notifications`.execute(db);
  await db.schema.dropTable('push_notifications').execute();
  await db.schema.alterTable('push_notifications_v2').renameTo('push_notifications').execute();
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.dropTable('push_notifications').execute();
  await db.schema.dropTable('push_counts').execute();
  await db.schema
    .createTable('push_counts')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('notification_count', 'integer', (c) => c.notNull())
    .addColumn('highlight_count', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('push_counts_pk', ['user_id', 'room_id'])
    .execute();
  await db.schema
    .createTable('push_notifications')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('stream_pos', 'bigint', (c) => c.notNull())
    .addColumn('actions', 'text', (c) => c.notNull())
    .addColumn('highlight', 'integer', (c) => c.notNull())
    .addColumn('ts', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('push_notifications_pk', ['user_id', 'event_id'])
    .execute();
  await db.schema.createIndex('push_notifications_user_pos').on('push_notifications').columns(['user_id', 'stream_pos']).execute();
}
