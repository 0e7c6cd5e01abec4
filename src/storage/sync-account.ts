import { sql, type Compilable, type Kysely, type RawBuilder } from 'kysely';
import type { AccountDataEntry } from './account-data.js';
import { HotQuery } from './compiled.js';
import type { Engine } from './db.js';
import type { PresenceRow } from './presence.js';
import type { PushCountRow } from './push.js';
import type { MembershipRow } from './rooms-sync.js';
import type { Database } from './schema.js';
import type { ToDeviceRow } from './to-device.js';

/** Which of the user's membership rows a snapshot reads (RoomSyncRepo.memberships). */
export const ROOMS = { changed: 0, joined: 1, all: 2 } as const;

/** Everything of /sync outside the rooms for one device, as of one stream head, and the user's memberships. */
export interface AccountSnapshot {
  /** The latest committed stream position: every change read below is at or before it. */
  head: number;
  /** To-device messages in (after, head], oldest first, at most the limit asked. */
  toDevice: ToDeviceRow[];
  /** Account data (global and per room) changed in (accountDataAfter, head], oldest first. */
  accountData: AccountDataEntry[];
  /** Users whose devices changed for the observer in (after, head], each with the first such position. */
  deviceLists: { user_id: string; stream_pos: number }[];
  presence: PresenceRow | undefined;
  /** The presence of the user's room-mates (and the user's own) at positions in (presenceAfter, head]. */
  matesPresence: PresenceRow[];
  /** The user's membership rows `rooms` asked for, after min(after, head), each with its room's latest position. */
  memberships: MembershipRow[];
  oneTimeKeyCounts: Record<string, number>;
  unusedFallbackKeyTypes: string[];
}

export interface AccountSnapshotRequest {
  userId: string;
  deviceId: string;
  /** Positions are read after min(after, head). */
  after: number;
  accountDataAfter: number;
  toDeviceLimit: number;
  /**
   * The device's to-device messages up to here are acknowledged (the since token): deleted, in this
   * statement on PostgreSQL, in one before it on SQLite. -1 for none.
   */
  acknowledged: number;
  /**
   * Membership rows: `changed`, of rooms where the membership or (joined rooms) anything changed;
   * `joined`, those and every joined room; `all`, every row.
   */
  rooms: (typeof ROOMS)[keyof typeof ROOMS];
  /** Room-mates' presence is read after this position (-1: all of it). */
  presenceAfter: number;
}

type Slots = [userId: string, deviceId: string, after: number, accountDataAfter: number, limit: number, acknowledged: number, rooms: number, presenceAfter: number];
const PRESENCE_COLUMNS = ['user_id', 'state', 'status_msg', 'last_active_ts', 'stream_pos'];
interface SnapshotRow {
  head: number;
  to_device: unknown;
  account_data: unknown;
  device_lists: unknown;
  presence: unknown;
  memberships: unknown;
  mates_presence: unknown;
  one_time_keys: unknown;
  fallback_keys: unknown;
}

/**
 * Rooms where a receipt or typing changed after `after` (read by position: only what is new). `after`
 * must not refer to the outer query: SQLite would then read the list again for every membership row.
 * (No row is past the head the statement reads, so `after` needs no bound by it.)
 */
export function ephemeralRoomsSince(after: unknown): RawBuilder<unknown> {
  return sql`SELECT room_id FROM receipts WHERE stream_pos > ${after} UNION ALL SELECT room_id FROM room_typing WHERE stream_pos > ${after}`;
}

/**
 * The statement, per engine. The parts are scalar subqueries, each its own index range read, and
 * each returns JSON: node-postgres parses PostgreSQL's json, SQLite's is text. The head row is read
 * by its key: scanned, PostgreSQL guesses thousands of rows in that one-row table (its dead versions),
 * multiplies the subqueries' cost by them, and past jit_above_cost spends ~100 ms compiling the plan.
 */
function snapshotQuery(engine: Engine, ...[userId, deviceId, after, accountDataAfter, limit, acknowledged, rooms, presenceAfter]: Slots): RawBuilder<SnapshotRow> {
  const pg = engine === 'postgres';
  const int = (value: unknown) => (pg ? sql`${value}::bigint` : sql`${value}`);
  const least = (value: unknown) => (pg ? sql`LEAST(${int(value)}, h.position)` : sql`MIN(${value}, h.position)`);
  const array = (object: RawBuilder<unknown>, order?: string) =>
    pg ? sql`COALESCE(json_agg(${object}${order ? sql.raw(` ORDER BY ${order}`) : sql``}), '[]'::json)` : sql`json_group_array(${object})`;
  const object = (alias: string, columns: string[]) =>
    sql.raw(`${pg ? 'json_build_object' : 'json_object'}(${columns.map((c) => `'${c}', ${alias}.${c}`).join(', ')})`);
  // PostgreSQL deletes the acknowledged messages in the same statement (SQLite has no DELETE in WITH).
  // The two sets are apart: deleted up to the since token, read after it (or after the head).
  // SQLite's json_object would quote the counts' array (text once it leaves its subquery) as a string.
  const membership = sql.raw(
    `${pg ? 'json_build_object' : 'json_object'}(${['room_id', 'membership', 'event_id', 'stream_pos', 'forgotten', 'last_pos', 'ephemeral'].map((c) => `'${c}', m.${c}`).join(', ')}, 'unread', ${pg ? 'm.unread' : 'json(m.unread)'})`,
  );
  const acknowledge = pg ? sql`WITH acknowledged AS (DELETE FROM to_device_inbox WHERE user_id = ${userId} AND device_id = ${deviceId} AND stream_pos <= ${int(acknowledged)}) ` : sql``;
  return sql<SnapshotRow>`${acknowledge}
    SELECT h.position AS head,
      (SELECT ${array(object('t', ['stream_pos', 'sender', 'type', 'content']), 't.stream_pos')} FROM (
        SELECT stream_pos, sender, type, content FROM to_device_inbox
        WHERE user_id = ${userId} AND device_id = ${deviceId} AND stream_pos > ${least(after)} AND stream_pos <= h.position
        ORDER BY stream_pos LIMIT ${limit}) AS t) AS to_device,
      (SELECT ${array(object('a', ['room_id', 'type', 'content', 'stream_pos']), 'a.stream_pos')} FROM (
        SELECT room_id, type, content, stream_pos FROM account_data
        WHERE user_id = ${userId} AND stream_pos > ${least(accountDataAfter)} AND stream_pos <= h.position
        ORDER BY stream_pos) AS a) AS account_data,
      (SELECT ${array(object('d', ['user_id', 'stream_pos']))} FROM (
        SELECT changed_user_id AS user_id, MIN(stream_pos) AS stream_pos FROM device_list_changes
        WHERE user_id = ${userId} AND stream_pos > ${least(after)} AND stream_pos <= h.position
        GROUP BY changed_user_id) AS d) AS device_lists,
      (SELECT ${object('p', PRESENCE_COLUMNS)} FROM presence AS p WHERE p.user_id = ${userId}) AS presence,
      (SELECT ${array(membership)} FROM (
        SELECT m.room_id, m.membership, m.event_id, m.stream_pos, m.forgotten, r.last_pos,
          CASE WHEN m.room_id IN (${ephemeralRoomsSince(int(after))}) THEN 1 ELSE 0 END AS ephemeral,
          (SELECT ${array(object('c', ['thread_id', 'notification_count', 'highlight_count', 'stream_pos']))} FROM push_counts AS c
            WHERE c.user_id = m.user_id AND c.room_id = m.room_id) AS unread
        FROM room_members AS m JOIN rooms AS r ON r.room_id = m.room_id
        WHERE m.user_id = ${userId} AND (${int(rooms)} = ${sql.raw(String(ROOMS.all))} OR m.stream_pos > ${least(after)}
          OR (m.membership = 'join' AND (${int(rooms)} = ${sql.raw(String(ROOMS.joined))} OR r.last_pos > ${least(after)}
            OR m.room_id IN (${ephemeralRoomsSince(int(after))}))))) AS m) AS memberships,
      (SELECT ${array(object('q', PRESENCE_COLUMNS))} FROM presence AS q
        WHERE q.stream_pos > ${int(presenceAfter)} AND q.stream_pos <= h.position AND q.user_id IN (
          SELECT other.user_id FROM room_members AS other JOIN room_members AS mine ON mine.room_id = other.room_id
          WHERE mine.user_id = ${userId} AND mine.membership = 'join' AND other.membership = 'join')) AS mates_presence,
      (SELECT ${array(object('k', ['algorithm', 'n']))} FROM (
        SELECT algorithm, COUNT(*) AS n FROM e2e_one_time_keys WHERE user_id = ${userId} AND device_id = ${deviceId} GROUP BY algorithm) AS k) AS one_time_keys,
      (SELECT ${array(sql.raw('f.algorithm'))} FROM e2e_fallback_keys AS f WHERE f.user_id = ${userId} AND f.device_id = ${deviceId} AND f.used = 0) AS fallback_keys
    FROM stream_head AS h WHERE h.id = 1`;
}

/** Built once per engine (compiled.ts): every sync runs it, so PostgreSQL plans it once per connection. */
const queries = {
  postgres: new HotQuery(
    (db, userId: string, deviceId: string, after: number, accountDataAfter: number, limit: number, acknowledged: number, rooms: number, presenceAfter: number): Compilable<SnapshotRow> => ({
      compile: () => snapshotQuery('postgres', userId, deviceId, after, accountDataAfter, limit, acknowledged, rooms, presenceAfter).compile(db),
    }),
  ),
  sqlite: new HotQuery(
    (db, userId: string, deviceId: string, after: number, accountDataAfter: number, limit: number, acknowledged: number, rooms: number, presenceAfter: number): Compilable<SnapshotRow> => ({
      compile: () => snapshotQuery('sqlite', userId, deviceId, after, accountDataAfter, limit, acknowledged, rooms, presenceAfter).compile(db),
    }),
  ),
};

const json = <T>(value: unknown): T => (typeof value === 'string' ? (JSON.parse(value) as T) : (value as T));

/**
 * The account's side of /sync in one statement (one round trip on PostgreSQL instead of nine):
 * the stream head, to-device messages, account data, device-list changes, presence, key counts,
 * and the user's membership rows that the rooms section starts from.
 * The parts read one snapshot, so what they return is consistent with the head.
 */
export class SyncAccountRepo {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly engine: Engine,
  ) {}

  async snapshot(r: AccountSnapshotRequest): Promise<AccountSnapshot> {
    if (this.engine === 'sqlite' && r.acknowledged >= 0) {
      await this.db.deleteFrom('to_device_inbox').where('user_id', '=', r.userId).where('device_id', '=', r.deviceId).where('stream_pos', '<=', r.acknowledged).execute();
    }
    const { rows } = await queries[this.engine].execute(this.db, r.userId, r.deviceId, r.after, r.accountDataAfter, r.toDeviceLimit, r.acknowledged, r.rooms, r.presenceAfter);
    const row = rows[0]!;
    const byPos = (a: { stream_pos: number }, b: { stream_pos: number }) => a.stream_pos - b.stream_pos;
    const presence = json<PresenceRow | null>(row.presence);
    const presenceRow = (p: PresenceRow): PresenceRow => ({ ...p, last_active_ts: Number(p.last_active_ts), stream_pos: Number(p.stream_pos) });
    return {
      head: Number(row.head),
      toDevice: json<ToDeviceRow[]>(row.to_device).map((m) => ({ ...m, stream_pos: Number(m.stream_pos) })).sort(byPos),
      accountData: json<AccountDataEntry[]>(row.account_data).map((e) => ({ ...e, stream_pos: Number(e.stream_pos) })).sort(byPos),
      deviceLists: json<{ user_id: string; stream_pos: number }[]>(row.device_lists).map((d) => ({ user_id: d.user_id, stream_pos: Number(d.stream_pos) })),
      presence: presence ? presenceRow(presence) : undefined,
      matesPresence: json<PresenceRow[]>(row.mates_presence).map(presenceRow),
      memberships: json<(Omit<MembershipRow, 'ephemeral'> & { ephemeral: number; unread: PushCountRow[] })[]>(row.memberships).map((m) => ({
        ...m,
        stream_pos: Number(m.stream_pos),
        last_pos: Number(m.last_pos),
        forgotten: Number(m.forgotten),
        ephemeral: Number(m.ephemeral) === 1,
        unread: m.unread,
      })),
      oneTimeKeyCounts: Object.fromEntries(json<{ algorithm: string; n: number }[]>(row.one_time_keys).map((k) => [k.algorithm, Number(k.n)])),
      unusedFallbackKeyTypes: json<string[]>(row.fallback_keys),
    };
  }
}
