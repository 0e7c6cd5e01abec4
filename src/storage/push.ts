import { sql, type Kysely, type Selectable } from 'kysely';
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
      .where('type', '=', 'm.push_rules')
      .where('stream_pos', '>', after)
      .where('stream_pos', '<=', upto)
      .execute();
    return rows.map((r) => r.user_id);
  }

  /** Adds one notification (and one highlight when `highlight`) to each user's count in the room. */
  async addCounts(roomId: string, entries: readonly { userId: string; highlight: boolean }[]): Promise<void> {
    for (let i = 0; i < entries.length; i += CHUNK) {
      const chunk = entries.slice(i, i + CHUNK);
      await this.db
        .insertInto('push_counts')
        .values(chunk.map((e) => ({ user_id: e.userId, room_id: roomId, notification_count: 1, highlight_count: e.highlight ? 1 : 0 })))
        .onConflict((oc) =>
          oc.columns(['user_id', 'room_id']).doUpdateSet({
            notification_count: sql`push_counts.notification_count + excluded.notification_count`,
            highlight_count: sql`push_counts.highlight_count + excluded.highlight_count`,
          }),
        )
        .execute();
    }
  }

  /** Clears a user's counts in a room (a read receipt up to the latest event). */
  async resetCounts(userId: string, roomId: string): Promise<void> {
    await this.db.deleteFrom('push_counts').where('user_id', '=', userId).where('room_id', '=', roomId).execute();
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

  async addNotifications(rows: readonly PushNotificationRow[]): Promise<void> {
    for (let i = 0; i < rows.length; i += CHUNK) {
      await this.db
        .insertInto('push_notifications')
        .values(rows.slice(i, i + CHUNK))
        .onConflict((oc) => oc.columns(['user_id', 'event_id']).doNothing())
        .execute();
    }
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
