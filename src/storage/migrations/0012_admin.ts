import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * The admin API: server admins and erased accounts (Synapse's users.admin and erasure), registration
 * tokens (MSC3231) with the UIA sessions holding a pending use of one, and rooms blocked by an admin.
 */
export async function up(db: AnyDb): Promise<void> {
  await db.schema.alterTable('users').addColumn('admin', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  await db.schema.alterTable('users').addColumn('erased', 'integer', (c) => c.notNull().defaultTo(0)).execute();

  await db.schema
    .createTable('registration_tokens')
    .addColumn('token', 'text', (c) => c.primaryKey())
    .addColumn('uses_allowed', 'integer')
    .addColumn('pending', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('completed', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('expiry_time', 'bigint')
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .execute();
  // One row per UIA session that passed the token stage and has not completed registration: its pending use.
  await db.schema
    .createTable('registration_token_uses')
    .addColumn('session_id', 'text', (c) => c.primaryKey())
    .addColumn('token', 'text', (c) => c.notNull())
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('registration_token_uses_token').on('registration_token_uses').column('token').execute();

  await db.schema
    .createTable('blocked_rooms')
    .addColumn('room_id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: AnyDb): Promise<void> {
  for (const table of ['blocked_rooms', 'registration_token_uses', 'registration_tokens']) await db.schema.dropTable(table).execute();
  await db.schema.alterTable('users').dropColumn('erased').execute();
  await db.schema.alterTable('users').dropColumn('admin').execute();
}
