import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface PropagationJob {
  userId: string;
  generation: number;
  lastRoomId: string | null;
}

const jobOf = (row: { user_id: string; generation: number | string; last_room_id: string | null }): PropagationJob => ({
  userId: row.user_id,
  generation: Number(row.generation),
  lastRoomId: row.last_room_id,
});

/** Profile changes still to be written into the user's rooms, and which process works on each. */
export class ProfilePropagationsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /** A profile change: the user's rooms are all to be done (again). A lease someone holds stays theirs. */
  async request(userId: string): Promise<void> {
    await this.db
      .insertInto('profile_propagations')
      .values({ user_id: userId, generation: 1, last_room_id: null, leased_until: 0 })
      .onConflict((oc) => oc.column('user_id').doUpdateSet({ generation: sql<number>`profile_propagations.generation + 1`, last_room_id: null }))
      .execute();
  }

  /** Takes the user's job until `until`, unless another process holds it at `now`; undefined when there is none to take. */
  async claim(userId: string, now: number, until: number): Promise<PropagationJob | undefined> {
    const row = await this.db
      .updateTable('profile_propagations')
      .set({ leased_until: until })
      .where('user_id', '=', userId)
      .where('leased_until', '<=', now)
      .returning(['user_id', 'generation', 'last_room_id'])
      .executeTakeFirst();
    return row && jobOf(row);
  }

  async get(userId: string): Promise<PropagationJob | undefined> {
    const row = await this.db.selectFrom('profile_propagations').select(['user_id', 'generation', 'last_room_id']).where('user_id', '=', userId).executeTakeFirst();
    return row && jobOf(row);
  }

  /** Records the rooms done up to `lastRoomId`, keeping the lease; false when a newer change replaced the job. */
  async advance(job: PropagationJob, lastRoomId: string, until: number): Promise<boolean> {
    const result = await this.db
      .updateTable('profile_propagations')
      .set({ last_room_id: lastRoomId, leased_until: until })
      .where('user_id', '=', job.userId)
      .where('generation', '=', job.generation)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /** Removes a job whose rooms are all done; false when a newer change replaced it meanwhile. */
  async finish(job: PropagationJob): Promise<boolean> {
    const result = await this.db.deleteFrom('profile_propagations').where('user_id', '=', job.userId).where('generation', '=', job.generation).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  /** Gives a job back (this process stops): any process may take it up at once. */
  async release(userId: string): Promise<void> {
    await this.db.updateTable('profile_propagations').set({ leased_until: 0 }).where('user_id', '=', userId).execute();
  }

  /** Users whose jobs nobody holds at `now`. */
  async unclaimed(now: number, limit: number): Promise<string[]> {
    const rows = await this.db.selectFrom('profile_propagations').select('user_id').where('leased_until', '<=', now).orderBy('leased_until').limit(limit).execute();
    return rows.map((r) => r.user_id);
  }
}
