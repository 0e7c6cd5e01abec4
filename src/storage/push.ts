import { sql, type Kysely, type RawBuilder, type Selectable } from 'kysely';
import type { Engine } from './db.js';
import type { PushNotificationsTable } from './push-schema.js';
import type { Database } from './schema.js';

export type PushNotificationRow = Selectable<PushNotificationsTable>;

const PROGRESS = 'events';
const CHUNK = 500;

/** Push evaluation's progress along the global stream, unread notification counts, and notifications. */
export class PushRepo {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly engine: Engine,
  ) {}

  /** The last stream position evaluated. */
  async progress(): Promise<number> {
    const row = await this.db.selectFrom('push_progress').select('position').where('name', '=', PROGRESS).executeTakeFirst();
    return Number(row?.position ?? 0);
  }

  /**
   * The last position evaluated, with its row locked to this transaction (PostgreSQL): of several
   * processes, one at a time records a batch. SQLite's write transactions are serial anyway.
   */
  async lockProgress(): Promise<number> {
    let query = this.db.selectFrom('push_progress').select('position').where('name', '=', PROGRESS);
    if (this.engine === 'postgres') query = query.forUpdate();
    const row = await query.executeTakeFirst();
    return Number(row?.position ?? 0);
  }

  async setProgress(position: number): Promise<void> {
    await this.db.updateTable('push_progress').set({ position }).where('name', '=', PROGRESS).execute();
  }

  /**
   * Room events at positions in (after, upto], oldest first, at most `limit`: the rooms that moved
   * first (rooms.last_pos is indexed), then their events (by room and position), so that no index
   * is added to every event's write.
   */
  async eventsBetween(after: number, upto: number, limit: number): Promise<{ event_id: string; room_id: string; stream_pos: number; pdu: string }[]> {
    const rooms = await this.db.selectFrom('rooms').select('room_id').where('last_pos', '>', after).execute();
    if (rooms.length === 0) return [];
    const rows: { event_id: string; room_id: string; stream_pos: number; pdu: string }[] = [];
    for (let i = 0; i < rooms.length; i += CHUNK) {
      const chunk = rooms.slice(i, i + CHUNK).map((r) => r.room_id);
      rows.push(
        ...(await this.db
          .selectFrom('events')
          .select(['event_id', 'room_id', 'stream_pos', 'pdu'])
          .where('room_id', 'in', chunk)
          .where('stream_pos', '>', after)
          .where('stream_pos', '<=', upto)
          .where('outlier', '=', 0)
          .orderBy('stream_pos')
          .limit(limit)
          .execute()),
      );
    }
    return rows
      .map((r) => ({ ...r, stream_pos: Number(r.stream_pos) }))
      .sort((a, b) => a.stream_pos - b.stream_pos)
      .slice(0, limit);
  }

  /** Users whose push rules changed at positions in (after, upto]. */
  async pushRuleChanges(after: number, upto: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('account_data')
      .select('user_id')
      // A literal, so that SQLite uses the partial index (migration 0017).
      .where(sql<boolean>`type = 'm.push_rules'`)
      .where('stream_pos', '>', after)
      .where('stream_pos', '<=', upto)
      .execute();
    return rows.map((r) => r.user_id);
  }

  /**
   * Adds one notification (and one highlight when `highlight`) to each user's count in the room: one
   * statement of fixed text whatever the number of users (they go as one JSON array parameter), as
   * building a many-row insert cost more than running it. A user whose read receipt already covers
   * the event (at `eventPos`; it can arrive before the event is evaluated) is not counted.
   */
  async addCounts(roomId: string, eventPos: number, entries: readonly { userId: string; highlight: boolean }[]): Promise<void> {
    if (entries.length === 0) return;
    const list = JSON.stringify(entries.map((e) => [e.userId, e.highlight ? 1 : 0]));
    const unread = (user: RawBuilder<unknown>) =>
      sql`NOT EXISTS (SELECT 1 FROM receipts r WHERE r.room_id = ${roomId} AND r.user_id = ${user} AND r.receipt_type IN ('m.read', 'm.read.private') AND r.thread_id IN ('', 'main') AND r.event_pos >= ${eventPos})`;
    const update = sql`ON CONFLICT (user_id, room_id) DO UPDATE SET notification_count = push_counts.notification_count + 1, highlight_count = push_counts.highlight_count + excluded.highlight_count`;
    const query =
      this.engine === 'postgres'
        ? sql`INSERT INTO push_counts (user_id, room_id, notification_count, highlight_count) SELECT x ->> 0, ${roomId}::text, 1, (x ->> 1)::integer FROM json_array_elements(${list}::json) AS x WHERE ${unread(sql`x ->> 0`)} ${update}`
        : sql`INSERT INTO push_counts (user_id, room_id, notification_count, highlight_count) SELECT value ->> 0, ${roomId}, 1, value ->> 1 FROM json_each(${list}) WHERE ${unread(sql`value ->> 0`)} ${update}`;
    await query.execute(this.db);
  }

  /** Records that one event notified these users (one statement, as addCounts). */
  async addNotifications(event: { roomId: string; eventId: string; streamPos: number; ts: number }, users: readonly { userId: string; actions: string; highlight: boolean }[]): Promise<void> {
    if (users.length === 0) return;
    const list = JSON.stringify(users.map((u) => [u.userId, u.actions, u.highlight ? 1 : 0]));
    const columns = sql`INSERT INTO push_notifications (user_id, room_id, event_id, stream_pos, actions, highlight, ts)`;
    const query =
      this.engine === 'postgres'
        ? sql`${columns} SELECT x ->> 0, ${event.roomId}::text, ${event.eventId}::text, ${event.streamPos}::bigint, x ->> 1, (x ->> 2)::integer, ${event.ts}::bigint FROM json_array_elements(${list}::json) AS x ON CONFLICT DO NOTHING`
        : sql`${columns} SELECT value ->> 0, ${event.roomId}, ${event.eventId}, ${event.streamPos}, value ->> 1, value ->> 2, ${event.ts} FROM json_each(${list}) WHERE true ON CONFLICT DO NOTHING`;
    await query.execute(this.db);
  }

  /** Clears a user's counts in a room. */
  async resetCounts(userId: string, roomId: string): Promise<void> {
    await this.db.deleteFrom('push_counts').where('user_id', '=', userId).where('room_id', '=', roomId).execute();
  }

  /** A read receipt at `readPos`: the counts become the notifications of events after it. */
  async recountAfter(userId: string, roomId: string, readPos: number): Promise<void> {
    await this.resetCounts(userId, roomId);
    await sql`INSERT INTO push_counts (user_id, room_id, notification_count, highlight_count)
      SELECT ${userId}, ${roomId}, count(*), sum(highlight) FROM push_notifications
      WHERE user_id = ${userId} AND room_id = ${roomId} AND stream_pos > ${readPos} HAVING count(*) > 0`.execute(this.db);
  }

  /** The user's counts in these rooms (rooms without notifications are absent). */
  async counts(userId: string, roomIds: readonly string[]): Promise<Map<string, { notification_count: number; highlight_count: number }>> {
    const counts = new Map<string, { notification_count: number; highlight_count: number }>();
    for (let i = 0; i < roomIds.length; i += CHUNK) {
      const rows = await this.db
        .selectFrom('push_counts')
        .select(['room_id', 'notification_count', 'highlight_count'])
        .where('user_id', '=', userId)
        .where('room_id', 'in', roomIds.slice(i, i + CHUNK))
        .execute();
      for (const r of rows) counts.set(r.room_id, { notification_count: Number(r.notification_count), highlight_count: Number(r.highlight_count) });
    }
    return counts;
  }

  /** Per user: how many rooms hold unread notifications (the badge a push carries). */
  async unreadRooms(userIds: readonly string[]): Promise<Map<string, number>> {
    const unread = new Map<string, number>();
    for (let i = 0; i < userIds.length; i += CHUNK) {
      const rows = await this.db
        .selectFrom('push_counts')
        .select((eb) => ['user_id', eb.fn.countAll<number>().as('n')])
        .where('user_id', 'in', userIds.slice(i, i + CHUNK))
        .where('notification_count', '>', 0)
        .groupBy('user_id')
        .execute();
      for (const r of rows) unread.set(r.user_id, Number(r.n));
    }
    return unread;
  }

  /** A user's notifications, newest first, before position `before` (exclusive) when given. */
  notifications(userId: string, options: { before?: number; limit: number; highlightOnly: boolean }): Promise<PushNotificationRow[]> {
    let query = this.db.selectFrom('push_notifications').selectAll().where('user_id', '=', userId);
    if (options.before !== undefined) query = query.where('stream_pos', '<', options.before);
    if (options.highlightOnly) query = query.where('highlight', '=', 1);
    return query.orderBy('stream_pos', 'desc').limit(options.limit).execute();
  }

  /** Forgets notifications older than `before` (ms). */
  async pruneNotifications(before: number): Promise<void> {
    await this.db.deleteFrom('push_notifications').where('ts', '<', before).execute();
  }
}
