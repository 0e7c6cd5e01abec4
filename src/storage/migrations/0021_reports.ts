import { PostgresAdapter, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * Reports of events and of rooms, kept for the server's admins (Synapse's admin API reads the event
 * reports), numbered in the order received. They stay when the room is purged, as in Synapse.
 */
export async function up(db: AnyDb): Promise<void> {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  // AUTOINCREMENT on SQLite: a deleted report's number is never given to another.
  const id = (table: string) =>
    db.schema.createTable(table).addColumn('id', postgres ? 'bigserial' : 'integer', (c) => (postgres ? c.primaryKey() : c.primaryKey().autoIncrement()));
  await id('event_reports')
    .addColumn('received_ts', 'bigint', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('score', 'integer')
    .addColumn('sender', 'text', (c) => c.notNull())
    .execute();
  await id('room_reports')
    .addColumn('received_ts', 'bigint', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.dropTable('room_reports').execute();
  await db.schema.dropTable('event_reports').execute();
}
