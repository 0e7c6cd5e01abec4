import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * Email notifications: how far along the stream each email pusher has mailed (null for http
 * pushers), and, per email pusher and room, when it last mailed and how long that room now waits
 * before the next mail (the throttle).
 */
export async function up(db: AnyDb): Promise<void> {
  await db.schema.alterTable('pushers').addColumn('mailed_pos', 'bigint').execute();
  // Email pushers set before this mail from now on, as new ones do.
  await sql`UPDATE pushers SET mailed_pos = (SELECT position FROM push_progress WHERE name = 'events') WHERE kind = 'email'`.execute(db);
  await db.schema
    .createTable('email_pusher_throttle')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('app_id', 'text', (c) => c.notNull())
    .addColumn('pushkey', 'text', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('last_sent_ts', 'bigint', (c) => c.notNull())
    .addColumn('throttle_ms', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('email_pusher_throttle_pk', ['user_id', 'app_id', 'pushkey', 'room_id'])
    .execute();
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.dropTable('email_pusher_throttle').execute();
  await db.schema.alterTable('pushers').dropColumn('mailed_pos').execute();
}
