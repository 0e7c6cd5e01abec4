import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * Relations between events (`m.relates_to` with a `rel_type`): one row per child event, written in
 * the child's transaction and deleted when the child is redacted. The child's type, sender and
 * position are copied in (they never change) so that /relations, /threads and bundled aggregations
 * page and aggregate on this table's indexes alone.
 */
export async function up(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('event_relations')
    .addColumn('event_id', 'text', (c) => c.primaryKey())
    .addColumn('relates_to_id', 'text', (c) => c.notNull())
    .addColumn('rel_type', 'text', (c) => c.notNull())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('sender', 'text', (c) => c.notNull())
    .addColumn('aggregation_key', 'text')
    .addColumn('depth', 'bigint', (c) => c.notNull())
    .addColumn('stream_pos', 'bigint', (c) => c.notNull())
    .execute();
  // A parent's children in order (unfiltered /relations), and by relation type (filtered /relations, bundles).
  await db.schema.createIndex('event_relations_parent').on('event_relations').columns(['relates_to_id', 'depth', 'stream_pos']).execute();
  await db.schema.createIndex('event_relations_parent_type').on('event_relations').columns(['relates_to_id', 'rel_type', 'depth', 'stream_pos']).execute();
  await db.schema.createIndex('event_relations_room_type').on('event_relations').columns(['room_id', 'rel_type', 'stream_pos']).execute();
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.dropTable('event_relations').execute();
}
