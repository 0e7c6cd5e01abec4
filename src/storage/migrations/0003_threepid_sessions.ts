import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

export async function up(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('threepid_validation_sessions')
    .addColumn('sid', 'text', (c) => c.primaryKey())
    .addColumn('medium', 'text', (c) => c.notNull())
    .addColumn('address', 'text', (c) => c.notNull())
    .addColumn('flow', 'text', (c) => c.notNull())
    .addColumn('client_secret_hash', 'text', (c) => c.notNull())
    .addColumn('last_send_attempt', 'bigint', (c) => c.notNull())
    .addColumn('link_token_hash', 'text')
    .addColumn('code_hash', 'text')
    .addColumn('token_expires_ts', 'bigint')
    .addColumn('next_link', 'text')
    .addColumn('code_attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('sends', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .addColumn('validated_ts', 'bigint')
    .addColumn('consumed_ts', 'bigint')
    .addColumn('consumed_by', 'text')
    .execute();
  // One session per client secret, address and flow: concurrent identical requests meet here.
  await db.schema
    .createIndex('threepid_validation_sessions_key')
    .on('threepid_validation_sessions')
    .columns(['client_secret_hash', 'medium', 'address', 'flow'])
    .unique()
    .execute();
  await db.schema.createIndex('threepid_validation_sessions_created').on('threepid_validation_sessions').column('created_ts').execute();
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.dropTable('threepid_validation_sessions').execute();
}
