import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * Pushers and push delivery: the pushers; how far push evaluation has read the global stream
 * (starting at today's head, so an upgraded server pushes no old events); per-room notification
 * counts; the notifications of each user (GET /notifications); and an index to find push rule
 * changes by position (other processes' changes invalidate this one's compiled rules).
 */
export async function up(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('pushers')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('app_id', 'text', (c) => c.notNull())
    .addColumn('pushkey', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('app_display_name', 'text', (c) => c.notNull())
    .addColumn('device_display_name', 'text', (c) => c.notNull())
    .addColumn('profile_tag', 'text')
    .addColumn('lang', 'text', (c) => c.notNull())
    .addColumn('data', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text')
    .addColumn('pushkey_ts', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('pushers_pk', ['user_id', 'app_id', 'pushkey'])
    .execute();
  await db.schema.createIndex('pushers_app_pushkey').on('pushers').columns(['app_id', 'pushkey']).execute();

  await db.schema
    .createTable('push_progress')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('position', 'bigint', (c) => c.notNull())
    .execute();
  await sql`INSERT INTO push_progress (name, position) SELECT 'events', position FROM stream_head`.execute(db);

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

  await sql`CREATE INDEX account_data_push_rules ON account_data (stream_pos) WHERE type = 'm.push_rules'`.execute(db);
}

export async function down(db: AnyDb): Promise<void> {
  await sql`DROP INDEX account_data_push_rules`.execute(db);
  for (const table of ['push_notifications', 'push_counts', 'push_progress', 'pushers']) await db.schema.dropTable(table).execute();
}
