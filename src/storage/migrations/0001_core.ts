import type { Kysely } from 'kysely';

// Migrations take Kysely<any>: they describe tables that the typed schema does not know yet.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

export async function up(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('users')
    .addColumn('user_id', 'text', (c) => c.primaryKey())
    .addColumn('password_hash', 'text')
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .addColumn('deactivated', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('is_guest', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('displayname', 'text')
    .addColumn('avatar_url', 'text')
    .execute();

  await db.schema
    .createTable('devices')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('display_name', 'text')
    .addColumn('last_seen_ts', 'bigint')
    .addColumn('last_seen_ip', 'text')
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('devices_pk', ['user_id', 'device_id'])
    .execute();

  await db.schema
    .createTable('access_tokens')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .addColumn('expires_ts', 'bigint')
    .addColumn('refresh_token_hash', 'text')
    .execute();
  await db.schema.createIndex('access_tokens_device').on('access_tokens').columns(['user_id', 'device_id']).execute();

  await db.schema
    .createTable('refresh_tokens')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .addColumn('expires_ts', 'bigint')
    .execute();
  await db.schema.createIndex('refresh_tokens_device').on('refresh_tokens').columns(['user_id', 'device_id']).execute();

  await db.schema
    .createTable('uia_sessions')
    .addColumn('session_id', 'text', (c) => c.primaryKey())
    .addColumn('operation', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text')
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .addColumn('expires_ts', 'bigint', (c) => c.notNull())
    .addColumn('results', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('uia_sessions_expiry').on('uia_sessions').column('expires_ts').execute();

  await db.schema
    .createTable('user_threepids')
    .addColumn('medium', 'text', (c) => c.notNull())
    .addColumn('address', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('validated_ts', 'bigint', (c) => c.notNull())
    .addColumn('added_ts', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('user_threepids_pk', ['medium', 'address'])
    .execute();
  await db.schema.createIndex('user_threepids_user').on('user_threepids').column('user_id').execute();

  await db.schema
    .createTable('rate_limits')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('tat', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: AnyDb): Promise<void> {
  for (const table of ['rate_limits', 'user_threepids', 'uia_sessions', 'refresh_tokens', 'access_tokens', 'devices', 'users']) {
    await db.schema.dropTable(table).execute();
  }
}
