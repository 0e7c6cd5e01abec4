import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * Room upgrades under way or lately done, one row per old room, shared by every process on the
 * database: two processes upgrading one room at once make one replacement room, not two.
 */
export async function up(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('room_upgrades')
    .addColumn('old_room_id', 'text', (c) => c.primaryKey())
    .addColumn('claim_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('started_ts', 'bigint', (c) => c.notNull())
    .addColumn('new_room_id', 'text')
    .addColumn('finished_ts', 'bigint')
    .execute();
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.dropTable('room_upgrades').execute();
}
