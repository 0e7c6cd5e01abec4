import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * Profile changes still to be written into the user's rooms as new member events: one row per
 * user, made in the profile change's transaction, so that a restart part-way loses no room.
 */
export async function up(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('profile_propagations')
    .addColumn('user_id', 'text', (c) => c.primaryKey())
    .addColumn('generation', 'bigint', (c) => c.notNull())
    .addColumn('last_room_id', 'text')
    .addColumn('leased_until', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('profile_propagations_lease').on('profile_propagations').column('leased_until').execute();
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.dropTable('profile_propagations').execute();
}
