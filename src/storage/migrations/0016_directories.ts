import { PostgresAdapter, sql, type Kysely } from 'kysely';
import { directoryValuesOf, emptyRoomDirectoryRow, userDirectoryWords } from '../directory.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * The room directory's view of each room (name, topic, alias, avatar, join rule, history
 * visibility, guest access, type, joined members), kept by the room write path; and the words each
 * local user is found by in the user directory, kept where display names are written. Both are
 * filled here from what is already stored.
 */
export async function up(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('room_directory')
    .addColumn('room_id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text')
    .addColumn('topic', 'text')
    .addColumn('canonical_alias', 'text')
    .addColumn('avatar_url', 'text')
    .addColumn('join_rule', 'text')
    .addColumn('history_visibility', 'text')
    .addColumn('guest_access', 'text')
    .addColumn('room_type', 'text')
    .addColumn('joined_members', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('name_lc', 'text')
    .addColumn('topic_lc', 'text')
    .addColumn('alias_lc', 'text')
    .execute();
  await db.schema.createIndex('room_directory_order').on('room_directory').columns(['joined_members', 'room_id']).execute();
  // Published rooms are found from here (few of all rooms), then joined to room_directory by key.
  await sql`CREATE INDEX rooms_published ON rooms (room_id) WHERE is_public = 1`.execute(db);

  // Words are searched by prefix ranges (word >= t AND word < t || U+10FFFF), which need code point
  // order: SQLite's default; on PostgreSQL the "C" collation (the database's may be a locale's).
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  await db.schema
    .createTable('user_directory_words')
    .addColumn('word', postgres ? sql`text COLLATE "C"` : 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('user_directory_words_pk', ['word', 'user_id'])
    .execute();
  await db.schema.createIndex('user_directory_words_user').on('user_directory_words').column('user_id').execute();

  await fillRoomDirectory(db);
  await fillUserWords(db);
}

async function fillRoomDirectory(db: AnyDb): Promise<void> {
  const rooms = (await db.selectFrom('rooms').select('room_id').execute()) as { room_id: string }[];
  for (let i = 0; i < rooms.length; i += 200) {
    await db
      .insertInto('room_directory')
      .values(rooms.slice(i, i + 200).map((r) => emptyRoomDirectoryRow(r.room_id)))
      .execute();
  }
  const types = ['m.room.create', 'm.room.name', 'm.room.topic', 'm.room.canonical_alias', 'm.room.avatar', 'm.room.join_rules', 'm.room.history_visibility', 'm.room.guest_access'];
  const state = (await db
    .selectFrom('current_state as s')
    .innerJoin('events as e', 'e.event_id', 's.event_id')
    .select(['s.room_id', 's.type', 'e.pdu'])
    .where('s.state_key', '=', '')
    .where('s.type', 'in', types)
    .execute()) as { room_id: string; type: string; pdu: string }[];
  for (const row of state) {
    const content = (JSON.parse(row.pdu) as { content?: Record<string, unknown> }).content ?? {};
    const values = directoryValuesOf(row.type, content);
    if (values) await db.updateTable('room_directory').set(values).where('room_id', '=', row.room_id).execute();
  }
  await sql`UPDATE room_directory SET joined_members = (SELECT COUNT(*) FROM room_members m WHERE m.room_id = room_directory.room_id AND m.membership = 'join')`.execute(db);
}

async function fillUserWords(db: AnyDb): Promise<void> {
  const users = (await db.selectFrom('users').select(['user_id', 'displayname']).where('deactivated', '=', 0).execute()) as { user_id: string; displayname: string | null }[];
  const rows = users.flatMap((u) => userDirectoryWords(u.user_id, u.displayname).map((word) => ({ word, user_id: u.user_id })));
  for (let i = 0; i < rows.length; i += 300) await db.insertInto('user_directory_words').values(rows.slice(i, i + 300)).execute();
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.dropTable('user_directory_words').execute();
  await sql`DROP INDEX rooms_published`.execute(db);
  await db.schema.dropTable('room_directory').execute();
}
