import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

export async function up(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('outbox')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('channel', 'text', (c) => c.notNull())
    .addColumn('dedupe_key', 'text', (c) => c.unique())
    .addColumn('payload', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_ts', 'bigint')
    .addColumn('locked_until', 'bigint')
    .addColumn('sent_ts', 'bigint')
    .addColumn('dead_ts', 'bigint')
    .addColumn('last_error', 'text')
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .execute();
  // Only pending messages have a next_attempt_ts, so this index holds just the queue.
  await db.schema.createIndex('outbox_due').on('outbox').column('next_attempt_ts').execute();
  await db.schema.createIndex('outbox_created').on('outbox').column('created_ts').execute();
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.dropTable('outbox').execute();
}
