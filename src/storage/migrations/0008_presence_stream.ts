import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/** A presence change takes a position in its user's stream, so that /sync can deliver it incrementally. */
export async function up(db: AnyDb): Promise<void> {
  await db.schema.alterTable('presence').addColumn('stream_pos', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.alterTable('presence').dropColumn('stream_pos').execute();
}
