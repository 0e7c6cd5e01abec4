import type { Kysely, Selectable } from 'kysely';
import type { PresenceTable } from './client-state-schema.js';
import type { Database } from './schema.js';

export type PresenceRow = Selectable<PresenceTable>;

export class PresenceRepo {
  constructor(private readonly db: Kysely<Database>) {}

  get(userId: string): Promise<PresenceRow | undefined> {
    return this.db.selectFrom('presence').selectAll().where('user_id', '=', userId).executeTakeFirst();
  }

  /** The presence of these users (those who have one). */
  async getMany(userIds: readonly string[]): Promise<PresenceRow[]> {
    if (userIds.length === 0) return [];
    const out: PresenceRow[] = [];
    for (let i = 0; i < userIds.length; i += 500) out.push(...(await this.db.selectFrom('presence').selectAll().where('user_id', 'in', userIds.slice(i, i + 500)).execute()));
    return out;
  }

  /**
   * The presence of the user's room-mates (and the user) that changed in (after, upto], or with
   * `after` undefined all of it up to `upto`.
   */
  roomMatesChanged(userId: string, after: number | undefined, upto: number): Promise<PresenceRow[]> {
    let query = this.db
      .selectFrom('presence')
      .selectAll()
      .where('stream_pos', '<=', upto)
      .where('user_id', 'in', (eb) =>
        eb
          .selectFrom('room_members as other')
          .innerJoin('room_members as mine', 'mine.room_id', 'other.room_id')
          .select('other.user_id')
          .where('mine.user_id', '=', userId)
          .where('mine.membership', '=', 'join')
          .where('other.membership', '=', 'join'),
      );
    if (after !== undefined) query = query.where('stream_pos', '>', after);
    return query.execute();
  }

  /**
   * Sets the state; `statusMsg` undefined keeps the stored message, `streamPos` undefined keeps the
   * stored position (a refresh of the last activity only, which syncs need not hear about).
   */
  async set(userId: string, state: string, statusMsg: string | null | undefined, now: number, streamPos?: number): Promise<void> {
    const update: { state: string; last_active_ts: number; status_msg?: string | null; stream_pos?: number } = { state, last_active_ts: now };
    if (statusMsg !== undefined) update.status_msg = statusMsg;
    if (streamPos !== undefined) update.stream_pos = streamPos;
    await this.db
      .insertInto('presence')
      .values({ user_id: userId, state, status_msg: statusMsg ?? null, last_active_ts: now, stream_pos: streamPos ?? 0 })
      .onConflict((oc) => oc.column('user_id').doUpdateSet(update))
      .execute();
  }
}
