import { sql, type CompiledQuery, type Kysely, type RawBuilder, type Selectable } from 'kysely';
import type { Engine } from './db.js';
import { inlineParameters } from './simple-query.js';
import type { PushNotificationsTable } from './push-schema.js';
import type { Database } from './schema.js';

export type PushNotificationRow = Selectable<PushNotificationsTable>;

const PROGRESS = 'events';
/** The thread ID of the main timeline (as read receipts name it). */
export const MAIN_THREAD = 'main';

export interface UnreadCounts {
  notification_count: number;
  highlight_count: number;
}

/** A user's unread counts in one room. */
export interface RoomUnread {
  /** Every thread's, the main timeline's included. */
  total: UnreadCounts;
  main: UnreadCounts;
  /** Threads with notifications, by root event ID. */
  threads: Map<string, UnreadCounts>;
  /** The stream position of the counts' last change. */
  streamPos: number;
}

const CHUNK = 500;

/** One push_counts row: a user's counts in one thread of a room (the main timeline's as `main`). */
export interface PushCountRow {
  room_id: string;
  thread_id: string;
  notification_count: number | string;
  highlight_count: number | string;
  stream_pos: number | string;
}

/** Adds one push_counts row to its room's counts in `counts`. */
export function addCountRow(counts: Map<string, RoomUnread>, r: PushCountRow): void {
  let room = counts.get(r.room_id);
  if (!room) counts.set(r.room_id, (room = { total: zero(), main: zero(), threads: new Map(), streamPos: 0 }));
  const n = { notification_count: Number(r.notification_count), highlight_count: Number(r.highlight_count) };
  room.total.notification_count += n.notification_count;
  room.total.highlight_count += n.highlight_count;
  if (r.thread_id === MAIN_THREAD) room.main = n;
  else if (n.notification_count > 0) room.threads.set(r.thread_id, n);
  room.streamPos = Math.max(room.streamPos, Number(r.stream_pos));
}

export interface NotifyingEvent {
  roomId: string;
  eventId: string;
  threadId: string;
  streamPos: number;
  ts: number;
}

export interface NotifiedUser {
  userId: string;
  actions: string;
  highlight: boolean;
}

const NOTIFICATIONS = sql`INSERT INTO push_notifications (user_id, stream_pos, room_id, thread_id, event_id, actions, highlight, ts)`;
const COUNTS = sql`INSERT INTO push_counts (user_id, room_id, thread_id, notification_count, highlight_count, stream_pos)`;
const COUNTS_UPDATE = sql`ON CONFLICT (user_id, room_id, thread_id) DO UPDATE SET notification_count = push_counts.notification_count + 1,
  highlight_count = push_counts.highlight_count + excluded.highlight_count, stream_pos = excluded.stream_pos`;

/** Push delivery's progress along the global stream, unread notification counts, and notifications. */
export class PushRepo {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly engine: Engine,
  ) {}

  /** The last stream position whose notifications were queued for pushers. */
  async progress(): Promise<number> {
    const row = await this.db.selectFrom('push_progress').select('position').where('name', '=', PROGRESS).executeTakeFirst();
    return Number(row?.position ?? 0);
  }

  /**
   * The last position queued, with its row locked to this transaction (PostgreSQL): of several
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
   * The notifications in (after, upto] of users with an http pusher, oldest first, at most `limit`
   * (by the key, user by user: the table has no index by position alone).
   */
  async pushable(after: number, upto: number, limit?: number): Promise<PushNotificationRow[]> {
    let query = this.db
      .selectFrom('push_notifications')
      .selectAll()
      .where('user_id', 'in', (eb) => eb.selectFrom('pushers').select('user_id').where('kind', '=', 'http'))
      .where('stream_pos', '>', after)
      .where('stream_pos', '<=', upto)
      .orderBy('stream_pos');
    if (limit !== undefined) query = query.limit(limit);
    return (await query.execute()).map((r) => ({ ...r, stream_pos: Number(r.stream_pos), ts: Number(r.ts) }));
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
   * Records that one event (at `event.streamPos`, in `event.threadId`) notified these users, and adds
   * it to their counts, with the event's position as the counts' last change. The users go as one
   * JSON array parameter, so the statements' text is fixed whatever their number; on PostgreSQL both
   * writes are one statement (one round trip in the send's write). No receipt can cover the event
   * yet: it is written in the event's own transaction.
   */
  async record(event: NotifyingEvent, users: readonly NotifiedUser[]): Promise<void> {
    if (users.length === 0) return;
    const list = JSON.stringify(users.map((u) => [u.userId, u.actions, u.highlight ? 1 : 0]));
    const { roomId, eventId, threadId, streamPos, ts } = event;
    if (this.engine === 'postgres') {
      await this.db.executeQuery(this.recordStatementPg(event, users, sql`${streamPos}::bigint`));
      return;
    }
    await sql`${NOTIFICATIONS} SELECT value ->> 0, ${streamPos}, ${roomId}, ${threadId}, ${eventId}, value ->> 1, value ->> 2, ${ts} FROM json_each(${list})`.execute(this.db);
    await sql`${COUNTS} SELECT value ->> 0, ${roomId}, ${threadId}, 1, value ->> 2, ${streamPos} FROM json_each(${list}) WHERE true ${COUNTS_UPDATE}`.execute(this.db);
  }

  /**
   * record's statement on PostgreSQL at the position the transaction took last (it holds the
   * stream's row, see StreamsRepo), for Store.deferToCommit after the event's own statement.
   */
  recordAtTakenPositionStatement(event: Omit<NotifyingEvent, 'streamPos'>, users: readonly NotifiedUser[]): CompiledQuery {
    return this.recordStatementPg(event, users, sql`(SELECT position FROM stream_head)`);
  }

  private recordStatementPg(event: Omit<NotifyingEvent, 'streamPos'>, users: readonly NotifiedUser[], pos: RawBuilder<unknown>): CompiledQuery {
    const list = JSON.stringify(users.map((u) => [u.userId, u.actions, u.highlight ? 1 : 0]));
    const { roomId, eventId, threadId, ts } = event;
    return sql`WITH list AS (SELECT x ->> 0 AS user_id, x ->> 1 AS actions, (x ->> 2)::integer AS highlight FROM json_array_elements(${list}::json) AS x),
      n AS (${NOTIFICATIONS} SELECT user_id, ${pos}, ${roomId}::text, ${threadId}::text, ${eventId}::text, actions, highlight, ${ts}::bigint FROM list)
      ${COUNTS} SELECT user_id, ${roomId}::text, ${threadId}::text, 1, highlight, ${pos} FROM list ${COUNTS_UPDATE}`.compile(this.db);
  }

  /**
   * Recounts a user's counts in a room after a read receipt in `threadId` ('' unthreaded) moved
   * forwards (at stream position `pos`): per thread the receipt covers (every thread for an
   * unthreaded one, else its own), the notifications after the furthest read receipt covering that
   * thread (unthreaded, or the thread's own). The other threads' counts cannot have changed. The main
   * timeline's row is kept even at zero, and always takes `pos`, so that a sync sees the change.
   *
   * Every covered thread is read up to at least the receipt's own `bound`, a constant: the scan is a
   * range of the (user, position) key from there, not the user's every notification (which made a
   * receipt cost more with every message the user was ever notified of). Call it with the stream
   * position taken: on PostgreSQL that lock orders it after every send that notified, so that what
   * it reads is every notification up to now and no send's count is lost.
   */
  async recount(userId: string, roomId: string, pos: number, threadId: string): Promise<void> {
    if (this.engine === 'postgres') {
      await recountPg(userId, roomId, sql`CAST(${pos} AS BIGINT)`, threadId).execute(this.db);
      return;
    }
    const { counted, columns, row } = recountParts(userId, roomId, sql`CAST(${pos} AS BIGINT)`, threadId);
    await sql`DELETE FROM push_counts WHERE user_id = ${userId} AND room_id = ${roomId} AND ${threadId} IN ('', thread_id)`.execute(this.db);
    // Only the main row can conflict (when the receipt is another thread's): its counts stay.
    await sql`INSERT INTO ${columns} SELECT ${row} FROM (${counted}) AS c WHERE true
      ON CONFLICT (user_id, room_id, thread_id) DO UPDATE SET stream_pos = excluded.stream_pos`.execute(this.db);
  }

  /**
   * PostgreSQL: the recount after a receipt as one statement's text, its values written in, for the
   * receipt's own round trip (ReceiptsRepo.putAllAtNextPosition): at the position its transaction
   * took (the stream head, which that transaction holds), and only when the receipt was written at
   * it. Statements of one simple query each read a fresh snapshot, so this one, run after the
   * position's lock was taken, sees every send that notified before (see recount).
   */
  recountAfterReceiptSqlPg(receipt: { room_id: string; receipt_type: string; user_id: string; thread_id: string }): string {
    const { room_id: roomId, receipt_type: type, user_id: userId, thread_id: threadId } = receipt;
    const head = sql`(SELECT position FROM stream_head)`;
    const written = sql`EXISTS (SELECT 1 FROM receipts WHERE room_id = ${roomId} AND receipt_type = ${type} AND user_id = ${userId}
      AND thread_id = ${threadId} AND stream_pos = ${head})`;
    return inlineParameters(recountPg(userId, roomId, head, threadId, written).compile(this.db));
  }

  /** The user's counts in these rooms (rooms without notifications are absent). */
  async counts(userId: string, roomIds: readonly string[]): Promise<Map<string, RoomUnread>> {
    const counts = new Map<string, RoomUnread>();
    for (let i = 0; i < roomIds.length; i += CHUNK) {
      const rows = await this.db
        .selectFrom('push_counts')
        .select(['room_id', 'thread_id', 'notification_count', 'highlight_count', 'stream_pos'])
        .where('user_id', '=', userId)
        .where('room_id', 'in', roomIds.slice(i, i + CHUNK))
        .execute();
      for (const r of rows) addCountRow(counts, r);
    }
    return counts;
  }

  /** Per user: how many rooms hold unread notifications (the badge a push carries). */
  async unreadRooms(userIds: readonly string[]): Promise<Map<string, number>> {
    const unread = new Map<string, number>();
    for (let i = 0; i < userIds.length; i += CHUNK) {
      const rows = await this.db
        .selectFrom('push_counts')
        .select((eb) => ['user_id', eb.fn.count<number>('room_id').distinct().as('n')])
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

  /**
   * Forgets the notifications older than `before` (ms) that the user has read (a read receipt,
   * unthreaded or of the notification's thread, at or after its event): unread ones still count.
   */
  async pruneNotifications(before: number): Promise<number> {
    const result = await sql`DELETE FROM push_notifications WHERE ts < ${before} AND EXISTS (SELECT 1 FROM receipts r
      WHERE r.room_id = push_notifications.room_id AND r.user_id = push_notifications.user_id AND r.receipt_type IN ('m.read', 'm.read.private')
        AND r.thread_id IN ('', push_notifications.thread_id) AND r.event_pos >= push_notifications.stream_pos)`.execute(this.db);
    return Number(result.numAffectedRows ?? 0);
  }
}

function zero(): UnreadCounts {
  return { notification_count: 0, highlight_count: 0 };
}

/** The recount's parts (see PushRepo.recount): the counts of the covered threads, and the push_counts row each makes. */
function recountParts(userId: string, roomId: string, pos: RawBuilder<unknown>, threadId: string) {
  const readBy = (thread: RawBuilder<unknown>) => sql`COALESCE((SELECT max(r.event_pos) FROM receipts r WHERE r.room_id = ${roomId} AND r.user_id = ${userId}
    AND r.receipt_type IN ('m.read', 'm.read.private') AND r.thread_id IN ('', ${thread})), -1)`;
  const counted = sql`SELECT t.thread_id AS thread_id, sum(t.c) AS n, sum(t.h) AS h FROM (
      SELECT n.thread_id AS thread_id, 1 AS c, n.highlight AS h FROM push_notifications n
      WHERE n.user_id = ${userId} AND n.stream_pos > ${readBy(sql`${threadId}`)} AND n.room_id = ${roomId}
        AND ${threadId} IN ('', n.thread_id) AND n.stream_pos > ${readBy(sql.ref('n.thread_id'))}
      UNION ALL SELECT 'main', 0, 0) AS t
    GROUP BY t.thread_id`;
  const columns = sql`push_counts (user_id, room_id, thread_id, notification_count, highlight_count, stream_pos)`;
  const row = sql`CAST(${userId} AS TEXT), CAST(${roomId} AS TEXT), c.thread_id, c.n, c.h, ${pos}`;
  return { counted, columns, row };
}

/**
 * PostgreSQL's recount in one statement: the covered rows upserted (the main row's counts kept when
 * the receipt is another thread's), the covered ones gone to zero deleted; all only when `when` holds.
 */
function recountPg(userId: string, roomId: string, pos: RawBuilder<unknown>, threadId: string, when: RawBuilder<unknown> = sql`true`): RawBuilder<unknown> {
  const { counted, columns, row } = recountParts(userId, roomId, pos, threadId);
  const covered = (column: string) => sql`CASE WHEN ${threadId} IN ('', push_counts.thread_id) THEN excluded.${sql.ref(column)} ELSE push_counts.${sql.ref(column)} END`;
  return sql`WITH c AS (${counted}),
    gone AS (DELETE FROM push_counts WHERE user_id = ${userId} AND room_id = ${roomId} AND ${threadId} IN ('', thread_id)
      AND thread_id NOT IN (SELECT thread_id FROM c) AND ${when})
    INSERT INTO ${columns} SELECT ${row} FROM c WHERE ${when}
    ON CONFLICT (user_id, room_id, thread_id) DO UPDATE SET notification_count = ${covered('notification_count')},
      highlight_count = ${covered('highlight_count')}, stream_pos = excluded.stream_pos`;
}
