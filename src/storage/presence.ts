import type { Kysely, Selectable } from 'kysely';
import type { PresenceTable } from './client-state-schema.js';
import type { Database } from './schema.js';

export type PresenceRow = Selectable<PresenceTable>;

export class PresenceRepo {
  constructor(private readonly db: Kysely<Database>) {}

  get(userId: string): Promise<PresenceRow | undefined> {
    return this.db.selectFrom('presence').selectAll().where('user_id', '=', userId).executeTakeFirst();
  }

  /** Sets the state; `statusMsg` undefined keeps the stored message. */
  async set(userId: string, state: string, statusMsg: string | null | undefined, now: number): Promise<void> {
    const update: { state: string; last_active_ts: number; status_msg?: string | null } = { state, last_active_ts: now };
    if (statusMsg !== undefined) update.status_msg = statusMsg;
    await this.db
      .insertInto('presence')
      .values({ user_id: userId, state, status_msg: statusMsg ?? null, last_active_ts: now })
      .onConflict((oc) => oc.column('user_id').doUpdateSet(update))
      .execute();
  }
}
