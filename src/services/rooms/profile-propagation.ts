import type { Logger } from 'pino';
import type { Clock } from '../../clock.js';
import { MatrixError } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import type { PropagationJob } from '../../storage/profile-propagations.js';
import type { RoomService } from './rooms.js';

/** How long a process holds a user's job without word from it (renewed at each room). */
const LEASE_MS = 30_000;
/** At most this many abandoned jobs are taken up at once; when one ends, the next are looked for. */
const SWEEP_BATCH = 100;

type Outcome = 'done' | 'replaced' | 'stopped';

/**
 * A profile change reaches every room the user is joined to as a new member event, as Synapse's
 * `_update_join_states` does, but after the HTTP answer rather than in it: the change's transaction
 * records a job (one row per user), and a worker in the process writes the rooms one by one in room
 * ID order, recording after each how far it got. A restart part-way resumes from there: at start-up
 * (a process that stops hands its job back), or for a job whose process died, once its lease ran
 * out, at any process's next start or maintenance run (every 10 minutes); a newer change while
 * rooms are being written starts them over (rooms already up to date get no new event). The writes
 * take no rate limit: the change was the user's one request. A room that refuses the event (its
 * rules, a blocked room) is skipped.
 */
export class ProfilePropagation {
  /** Users whose job this process is working on. */
  private readonly running = new Map<string, Promise<void>>();
  /** Users whose job changed while it ran here: looked at again once it ends. */
  private readonly again = new Set<string>();
  private closed = false;
  /** The last look for abandoned jobs found a full batch: there may be more. */
  private moreAbandoned = false;
  private logger: Logger | undefined;

  constructor(
    private readonly store: Store,
    private readonly rooms: RoomService,
    private readonly clock: Clock,
  ) {}

  /** In the profile change's transaction: the user's rooms are to get it, from this process once committed. */
  async request(work: Store, userId: string): Promise<void> {
    await work.profilePropagations.request(userId);
    work.afterCommit(() => this.poke(userId));
  }

  /** Works on the user's job, unless this process already does (then it looks again once done). */
  private poke(userId: string): void {
    if (this.closed) return;
    if (this.running.has(userId)) {
      this.again.add(userId);
      return;
    }
    const run = this.run(userId)
      .catch((err: unknown) => this.logger?.warn({ err: (err as Error).message, user_id: userId }, 'profile propagation failed; retried once its lease runs out'))
      .finally(() => {
        this.running.delete(userId);
        if (this.again.delete(userId)) this.poke(userId);
        else if (this.moreAbandoned) void this.takeUpAbandoned();
      });
    this.running.set(userId, run);
  }

  private async run(userId: string): Promise<void> {
    const jobs = this.store.profilePropagations;
    const now = this.clock.now();
    let job = await jobs.claim(userId, now, now + LEASE_MS);
    while (job) {
      const outcome = await this.propagate(job);
      if (outcome === 'stopped') return jobs.release(userId);
      if (outcome === 'done' && (await jobs.finish(job))) return;
      // A newer change replaced the job (the lease is still this process's): its rooms from the start.
      job = await jobs.get(userId);
    }
  }

  private async propagate(job: PropagationJob): Promise<Outcome> {
    const user = await this.store.users.get(job.userId);
    // A deactivated account leaves its rooms; it is not joined to them again.
    if (!user || Number(user.deactivated) !== 0) return 'done';
    const roomIds = (await this.store.rooms.roomsOf(job.userId, ['join']))
      .map((m) => m.room_id)
      .filter((id) => job.lastRoomId === null || id > job.lastRoomId)
      .sort();
    for (const roomId of roomIds) {
      if (this.closed) return 'stopped';
      try {
        await this.rooms.refreshProfile(job.userId, roomId);
      } catch (err) {
        // As Synapse: a room that fails is logged and skipped, the others still get the change.
        if (err instanceof MatrixError) this.logger?.debug({ room_id: roomId, user_id: job.userId, errcode: err.errcode }, 'profile change not written into a room');
        else this.logger?.warn({ err: (err as Error).message, room_id: roomId, user_id: job.userId }, 'profile change not written into a room');
      }
      const now = this.clock.now();
      if (!(await this.store.profilePropagations.advance(job, roomId, now + LEASE_MS))) return 'replaced';
    }
    return 'done';
  }

  /** Takes up the jobs nobody holds (their process stopped, or died and its lease ran out). */
  async takeUpAbandoned(): Promise<void> {
    try {
      this.moreAbandoned = false;
      const userIds = await this.store.profilePropagations.unclaimed(this.clock.now(), SWEEP_BATCH);
      this.moreAbandoned = userIds.length === SWEEP_BATCH;
      for (const userId of userIds) this.poke(userId);
    } catch (err) {
      if (!this.closed) this.logger?.warn({ err: (err as Error).message }, 'looking for profile changes to propagate failed');
    }
  }

  /** Takes up the jobs nobody holds; the stopper lets each running job finish its room and hands it back. */
  start(logger: Logger): () => Promise<void> {
    this.logger = logger;
    void this.takeUpAbandoned();
    return async () => {
      this.closed = true;
      await Promise.allSettled([...this.running.values()]);
    };
  }
}
