import { PostgresAdapter, sql, type Kysely } from 'kysely';
import { searchEntryOf } from '../search.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/** Events read per statement while the index is filled. */
const BATCH = 1000;

/**
 * The full-text index of room events for /search: one row per searchable text (a message's body,
 * a room's name or topic), written in the event's transaction and deleted by its redaction.
 * SQLite: an FTS5 table over the rows' `value` (external content, so the text is stored once),
 * kept in step by triggers; its rowid is the row's INTEGER PRIMARY KEY, which VACUUM keeps.
 * PostgreSQL: a generated tsvector column with a GIN index. Filled here from the events stored.
 */
export async function up(db: AnyDb): Promise<void> {
  if (db.getExecutor().adapter instanceof PostgresAdapter) {
    await sql`CREATE TABLE event_search (
      event_id text PRIMARY KEY,
      room_id text NOT NULL,
      key text NOT NULL,
      value text NOT NULL,
      vector tsvector GENERATED ALWAYS AS (to_tsvector('english', value)) STORED
    )`.execute(db);
    await sql`CREATE INDEX event_search_vector ON event_search USING GIN (vector)`.execute(db);
  } else {
    await sql`CREATE TABLE event_search (
      id INTEGER PRIMARY KEY,
      event_id text NOT NULL UNIQUE,
      room_id text NOT NULL,
      key text NOT NULL,
      value text NOT NULL
    )`.execute(db);
    await sql`CREATE VIRTUAL TABLE event_search_fts USING fts5(value, content='event_search', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')`.execute(db);
    await sql`CREATE TRIGGER event_search_insert AFTER INSERT ON event_search BEGIN
      INSERT INTO event_search_fts (rowid, value) VALUES (new.id, new.value);
    END`.execute(db);
    await sql`CREATE TRIGGER event_search_delete AFTER DELETE ON event_search BEGIN
      INSERT INTO event_search_fts (event_search_fts, rowid, value) VALUES ('delete', old.id, old.value);
    END`.execute(db);
  }
  await fill(db);
}

async function fill(db: AnyDb): Promise<void> {
  let after = -1;
  for (;;) {
    const rows = (await db
      .selectFrom('events')
      .select(['event_id', 'room_id', 'type', 'pdu', 'stream_pos'])
      .where('type', 'in', ['m.room.message', 'm.room.name', 'm.room.topic'])
      .where('redacted_by', 'is', null)
      .where('stream_pos', '>', after)
      .orderBy('stream_pos')
      .limit(BATCH)
      .execute()) as { event_id: string; room_id: string; type: string; pdu: string; stream_pos: number | string }[];
    if (rows.length === 0) return;
    const entries = rows.flatMap((row) => {
      let content: unknown;
      try {
        content = (JSON.parse(row.pdu) as { content?: unknown }).content;
      } catch {
        return [];
      }
      const entry = searchEntryOf({ event_id: row.event_id, room_id: row.room_id, type: row.type, content });
      return entry ? [entry] : [];
    });
    if (entries.length > 0) await db.insertInto('event_search').values(entries).execute();
    after = Number(rows.at(-1)!.stream_pos);
  }
}

export async function down(db: AnyDb): Promise<void> {
  if (!(db.getExecutor().adapter instanceof PostgresAdapter)) await sql`DROP TABLE event_search_fts`.execute(db);
  await db.schema.dropTable('event_search').execute();
}
