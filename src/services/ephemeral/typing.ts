import type { Logger } from 'pino';
import type { Clock } from '../../clock.js';
import { forbidden } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import type { StreamWriter } from '../sync/stream-writer.js';
import { requireJoined } from './room-member.js';

/** Synapse's default and cap for a typing request's `timeout`. */
export const DEFAULT_TYPING_TIMEOUT_MS = 30_000;
export const MAX_TYPING_TIMEOUT_MS = 120_000;
/** A sweep runs this long after the expiry it waits for, so that the expiry has surely passed. */
const SWEEP_SLACK_MS = 20;
/** After a failed sweep (e.g. the database briefly unreachable), the next try. */
const RETRY_MS = 1000;

/**
 * Typing notifications. They live in a table and take positions on the global stream rather than in
 * each process's memory: every process sharing the database then agrees on who types and on what a
 * sync token covers (a client may sync with one process and then another), a process that missed a
 * notice (LISTEN reconnecting) still answers right, and tokens keep their `m1_<pos>` form. Only a
 * change (starting, stopping, expiring) takes a position and wakes the room's syncs, here and in
 * the other processes; a client renewing its typing every few seconds just moves the expiry.
 *
 * Expiry: whichever process set a typing, or served it to a sync, sweeps when it runs out: it marks
 * the expired rows stopped at a new position, which wakes the syncs of those rooms. Two processes
 * sweeping at once take the rows once (the UPDATE re-checks them); at start-up each process sweeps
 * what expired while no process ran.
 */
export class TypingService {
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private closed = false;
  private logger: Logger | undefined;

  constructor(
    private readonly store: Store,
    private readonly writer: StreamWriter,
    private readonly clock: Clock,
  ) {}

  /** PUT /rooms/{roomId}/typing/{userId}. */
  async set(requesterId: string, userId: string, roomId: string, typing: boolean, timeoutMs = DEFAULT_TYPING_TIMEOUT_MS): Promise<void> {
    if (requesterId !== userId) throw forbidden("Cannot set another user's typing state");
    await requireJoined(this.store, roomId, userId);
    const now = this.clock.now();
    if (!typing) {
      await this.writer.write(async (tx) => {
        const row = await tx.store.typing.get(roomId, userId);
        if (!row || Number(row.typing) === 0) return;
        await tx.store.typing.put({ room_id: roomId, user_id: userId, typing: 0, expires_ts: now, stream_pos: await tx.roomPosition(roomId) });
      });
      return;
    }
    const expires = now + Math.min(timeoutMs, MAX_TYPING_TIMEOUT_MS);
    await this.writer.write(async (tx) => {
      const row = await tx.store.typing.get(roomId, userId);
      if (row && Number(row.typing) === 1 && Number(row.expires_ts) > now && (await tx.store.typing.extend(roomId, userId, expires))) return;
      await tx.store.typing.put({ room_id: roomId, user_id: userId, typing: 1, expires_ts: expires, stream_pos: await tx.roomPosition(roomId) });
    });
    this.expectExpiry(expires);
  }

  /** Makes sure this process sweeps at `at` (a typing it knows of runs out then). */
  expectExpiry(at: number): void {
    if (this.closed || at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => void this.sweep(), Math.max(0, at - this.clock.now()) + SWEEP_SLACK_MS);
    this.timer.unref();
  }

  /** Marks every typing that ran out as stopped, then waits for the next one to run out. */
  async sweep(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
    if (this.closed) return;
    try {
      const now = this.clock.now();
      await this.writer.write(async (tx) => {
        const rooms = await tx.store.typing.expiredRooms(now);
        if (rooms.length === 0) return;
        let position = 0;
        for (const room of rooms) position = await tx.roomPosition(room);
        await tx.store.typing.expire(now, position);
      });
      const next = await this.store.typing.nextExpiry();
      if (next !== undefined) this.expectExpiry(next);
    } catch (err) {
      if (this.closed) return;
      this.logger?.warn({ err: (err as Error).message }, 'typing expiry sweep failed');
      this.expectExpiry(this.clock.now() + RETRY_MS);
    }
  }

  /** Sweeps what expired while no process ran, and from then on whatever this process learns of; returns the stopper. */
  start(logger: Logger): () => Promise<void> {
    this.logger = logger;
    void this.sweep();
    return async () => {
      this.closed = true;
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
    };
  }
}
