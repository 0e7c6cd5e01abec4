import { sql, type Kysely } from 'kysely';
import type { PushNotificationRow } from './push.js';
import type { PusherRow } from './pushers.js';
import type { Database } from './schema.js';

/** An email pusher's key. */
export interface EmailPusherKey {
  user_id: string;
  app_id: string;
  pushkey: string;
}

export interface Throttle {
  last_sent_ts: number;
  throttle_ms: number;
}

/** Whether the user's main-timeline read receipt in the notification's room does not cover it. */
const UNREAD = sql<boolean>`NOT EXISTS (SELECT 1 FROM receipts r WHERE r.room_id = n.room_id AND r.user_id = n.user_id AND r.receipt_type IN ('m.read', 'm.read.private') AND r.thread_id IN ('', 'main') AND r.event_pos >= n.stream_pos)`;

/** What email pushers need: their unread, not yet mailed notifications, their progress, their throttles. */
export class EmailNotifsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /** Email pushers with at least one unread notification in (mailed_pos, upto]. */
  withUnread(upto: number): Promise<PusherRow[]> {
    return this.db
      .selectFrom('pushers as p')
      .selectAll('p')
      .where('p.kind', '=', 'email')
      .where('p.mailed_pos', 'is not', null)
      .where(({ exists, selectFrom }) =>
        exists(
          selectFrom('push_notifications as n')
            .select(sql`1`.as('one'))
            .whereRef('n.user_id', '=', 'p.user_id')
            .whereRef('n.stream_pos', '>', 'p.mailed_pos')
            .where('n.stream_pos', '<=', upto)
            .where(UNREAD),
        ),
      )
      .execute();
  }

  /** The user's unread notifications in (after, upto], oldest first, at most `limit`. */
  unread(userId: string, after: number, upto: number, limit: number): Promise<PushNotificationRow[]> {
    return this.db
      .selectFrom('push_notifications as n')
      .selectAll('n')
      .where('n.user_id', '=', userId)
      .where('n.stream_pos', '>', after)
      .where('n.stream_pos', '<=', upto)
      .where(UNREAD)
      .orderBy('n.stream_pos')
      .limit(limit)
      .execute();
  }

  /** When the user's notification before `pos` in the room arrived (ms), if any. */
  async previousNotificationTs(userId: string, roomId: string, pos: number): Promise<number | undefined> {
    const row = await this.db
      .selectFrom('push_notifications')
      .select('ts')
      .where('user_id', '=', userId)
      .where('room_id', '=', roomId)
      .where('stream_pos', '<', pos)
      .orderBy('stream_pos', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? Number(row.ts) : undefined;
  }

  async throttles(key: EmailPusherKey): Promise<Map<string, Throttle>> {
    const rows = await this.db
      .selectFrom('email_pusher_throttle')
      .select(['room_id', 'last_sent_ts', 'throttle_ms'])
      .where('user_id', '=', key.user_id)
      .where('app_id', '=', key.app_id)
      .where('pushkey', '=', key.pushkey)
      .execute();
    return new Map(rows.map((r) => [r.room_id, { last_sent_ts: Number(r.last_sent_ts), throttle_ms: Number(r.throttle_ms) }]));
  }

  async setThrottle(key: EmailPusherKey, roomId: string, throttle: Throttle): Promise<void> {
    await this.db
      .insertInto('email_pusher_throttle')
      .values({ user_id: key.user_id, app_id: key.app_id, pushkey: key.pushkey, room_id: roomId, ...throttle })
      .onConflict((oc) => oc.columns(['user_id', 'app_id', 'pushkey', 'room_id']).doUpdateSet(throttle))
      .execute();
  }

  /**
   * Moves the pusher's progress from `from` to `to`; false when it is not at `from` any more (another
   * process mailed meanwhile, or the pusher was deleted or set again), so the caller's mail is not sent.
   */
  async advance(key: EmailPusherKey, from: number, to: number): Promise<boolean> {
    const result = await this.db
      .updateTable('pushers')
      .set({ mailed_pos: to })
      .where('user_id', '=', key.user_id)
      .where('app_id', '=', key.app_id)
      .where('pushkey', '=', key.pushkey)
      .where('kind', '=', 'email')
      .where('mailed_pos', '=', from)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

}
