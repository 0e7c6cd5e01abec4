import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * Which identity server each address was bound to through this server (Synapse's table of the same
 * name), so that unbinding, deleting the address and deactivation know where to unbind it.
 */
export async function up(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('user_threepid_id_server')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('medium', 'text', (c) => c.notNull())
    .addColumn('address', 'text', (c) => c.notNull())
    .addColumn('id_server', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('user_threepid_id_server_pkey', ['user_id', 'medium', 'address', 'id_server'])
    .execute();
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.dropTable('user_threepid_id_server').execute();
}
