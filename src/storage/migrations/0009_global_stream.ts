import { sql, type Kysely, type Transaction } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/** Rows per INSERT: well under SQLite's limit on bound variables. */
const CHUNK = 300;

/**
 * One global stream instead of one per user. Each user's positions are shifted by an offset (the
 * sum of the heads of the users before it), so every existing position becomes a distinct global
 * one and the order within a user's stream is kept. The offsets stay in legacy_stream_offsets, so
 * that a sync token issued before this migration ("s<P>", a position in that user's stream) maps
 * exactly onto the global stream: P + offset.
 */
export async function up(db: AnyDb): Promise<void> {
  // Postgres runs each migration in a transaction; SQLite does not, and this one must not half-happen.
  if (db.isTransaction) await migrate(db as Transaction<unknown>);
  else await db.transaction().execute(migrate);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function migrate(db: Transaction<any>): Promise<void> {
  await db.schema
    .createTable('stream_head')
    .addColumn('id', 'integer', (c) => c.primaryKey().check(sql`id = 1`))
    .addColumn('position', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('legacy_stream_offsets')
    .addColumn('user_id', 'text', (c) => c.primaryKey())
    .addColumn('stream_offset', 'bigint', (c) => c.notNull())
    /** The user's own stream head when it was migrated: no legacy token of theirs can be beyond it. */
    .addColumn('legacy_head', 'bigint', (c) => c.notNull())
    .execute();

  const heads = (await db.selectFrom('user_streams').select(['user_id', 'position']).orderBy('user_id').execute()) as { user_id: string; position: number | string }[];
  let total = 0;
  const offsets = heads.map((row) => {
    const head = Number(row.position);
    const entry = { user_id: row.user_id, stream_offset: total, legacy_head: head };
    total += head;
    return entry;
  });
  for (let i = 0; i < offsets.length; i += CHUNK) await db.insertInto('legacy_stream_offsets').values(offsets.slice(i, i + CHUNK)).execute();
  await db.insertInto('stream_head').values({ id: 1, position: total }).execute();

  // Every table whose rows carry a position in their user's stream, including those other
  // migrations may have added: found by their columns rather than listed here.
  const tables = (await db.introspection.getTables()).filter((t) => {
    const names = t.columns.map((c) => c.name);
    return names.includes('stream_pos') && names.includes('user_id');
  });
  // Once per name: Postgres lists every schema, and the unqualified name below is ours.
  for (const name of new Set(tables.map((t) => t.name))) {
    const table = sql.table(name);
    // In two steps: unique keys are checked row by row, and shifting in place could collide with a
    // row not yet shifted. Negative positions collide with none.
    await sql`UPDATE ${table} SET stream_pos = -(stream_pos + (SELECT o.stream_offset FROM legacy_stream_offsets o WHERE o.user_id = ${table}.user_id))
      WHERE user_id IN (SELECT user_id FROM legacy_stream_offsets)`.execute(db);
    await sql`UPDATE ${table} SET stream_pos = -stream_pos WHERE stream_pos < 0`.execute(db);
  }
  await db.schema.dropTable('user_streams').execute();
}

export async function down(db: AnyDb): Promise<void> {
  // Positions stay global: the global head becomes every user's head, which is at or beyond each of
  // their rows, so per-user streams carry on from there.
  await db.schema.createTable('user_streams').addColumn('user_id', 'text', (c) => c.primaryKey()).addColumn('position', 'bigint', (c) => c.notNull()).execute();
  await sql`INSERT INTO user_streams (user_id, position) SELECT user_id, (SELECT position FROM stream_head) FROM users`.execute(db);
  await db.schema.dropTable('legacy_stream_offsets').execute();
  await db.schema.dropTable('stream_head').execute();
}
