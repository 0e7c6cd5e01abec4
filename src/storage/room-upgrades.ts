import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

/** Who is upgrading (or lately upgraded) each room (migration 0025). */
export interface RoomUpgradesTable {
  old_room_id: string;
  /** Names one attempt: a finished or abandoned attempt changes only its own row. */
  claim_id: string;
  user_id: string;
  started_ts: number;
  /** The replacement room, once the upgrade is done; null while it runs. */
  new_room_id: string | null;
  finished_ts: number | null;
}

export interface UpgradeClaim {
  claimId: string;
  userId: string;
  newRoomId: string | null;
}

/**
 * The upgrade claims of every process on the database: the first to claim a room upgrades it, and
 * its claim answers the others until it lapses (a while after it finished, or after it started
 * should it never finish: a process that died part-way).
 */
export class RoomUpgradesRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Claims the room's upgrade for `userId` unless a claim made or finished since `lapsedBefore`
   * holds it; answers the claim that holds it (theirs or this one), and whether it is this one.
   */
  async claim(oldRoomId: string, claimId: string, userId: string, now: number, lapsedBefore: number): Promise<{ claim: UpgradeClaim; ours: boolean } | undefined> {
    // One statement on both engines: a claim that has lapsed is taken over, a live one left alone.
    const taken = await this.db
      .insertInto('room_upgrades')
      .values({ old_room_id: oldRoomId, claim_id: claimId, user_id: userId, started_ts: now, new_room_id: null, finished_ts: null })
      .onConflict((oc) =>
        oc
          .column('old_room_id')
          .doUpdateSet({ claim_id: claimId, user_id: userId, started_ts: now, new_room_id: null, finished_ts: null })
          .where(sql<boolean>`coalesce(room_upgrades.finished_ts, room_upgrades.started_ts) < ${lapsedBefore}`),
      )
      .returning('claim_id')
      .executeTakeFirst();
    if (taken) return { claim: { claimId, userId, newRoomId: null }, ours: true };
    const held = await this.get(oldRoomId);
    // Gone in between (its upgrade failed): the caller tries again.
    return held && { claim: held, ours: false };
  }

  async get(oldRoomId: string): Promise<UpgradeClaim | undefined> {
    const row = await this.db.selectFrom('room_upgrades').select(['claim_id', 'user_id', 'new_room_id']).where('old_room_id', '=', oldRoomId).executeTakeFirst();
    return row && { claimId: row.claim_id, userId: row.user_id, newRoomId: row.new_room_id };
  }

  async finish(oldRoomId: string, claimId: string, newRoomId: string, now: number): Promise<void> {
    await this.db.updateTable('room_upgrades').set({ new_room_id: newRoomId, finished_ts: now }).where('old_room_id', '=', oldRoomId).where('claim_id', '=', claimId).execute();
  }

  /** Gives up a claim whose upgrade failed, so that the next request may try. */
  async abandon(oldRoomId: string, claimId: string): Promise<void> {
    await this.db.deleteFrom('room_upgrades').where('old_room_id', '=', oldRoomId).where('claim_id', '=', claimId).execute();
  }
}
