import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * Indexes for reading long rooms, both partial so that a plain message costs nothing more to store:
 *   - one user's member events in a room (history visibility reads them for every /messages,
 *     /context, /event and /members): without it, every event of the room was scanned;
 *   - a room's state events by stream position (the state in a sync's gap).
 * Queries must spell `type = 'm.room.member'` as a literal for SQLite to use the first.
 */
export async function up(db: AnyDb): Promise<void> {
  await sql`CREATE INDEX events_room_member_history ON events (room_id, state_key, stream_pos) WHERE type = 'm.room.member'`.execute(db);
  await sql`CREATE INDEX events_room_state_stream ON events (room_id, stream_pos) WHERE state_key IS NOT NULL`.execute(db);
}

export async function down(db: AnyDb): Promise<void> {
  await sql`DROP INDEX events_room_state_stream`.execute(db);
  await sql`DROP INDEX events_room_member_history`.execute(db);
}
