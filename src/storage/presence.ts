import type { Kysely, Selectable } from 'kysely';
import type { PresenceTable } from './client-state-schema.js';
import type { Database } from './schema.js';

export type PresenceRow = Selectable<PresenceTable>;

export class PresenceRepo {
  constructor(private readonly db: Kysely<Database>) {}

  get(userId: string): Promise<PresenceRow | undefined> {
    return this.db.selectFrom('presence').selectAll().where('user_id', '=', userId).executeTakeFirst();
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
