/**
 * Waiting out another connection's lock on a SQLite file (another process's, or another database
 * handle's in this one) without stopping the event loop. SQLite's own busy timeout sleeps the
 * thread between tries: every request of the process waits with it, and should the lock's holder be
 * this same thread (two servers in one process, as tests run them), it never lets go and the wait
 * ends in SQLITE_BUSY. So the connection has no busy timeout, and a statement refused with
 * SQLITE_BUSY is tried again from a timer.
 */

/** How long a statement waits for another connection's lock before its SQLITE_BUSY stands. */
export const BUSY_WAIT_MS = 5000;

/** Pauses between tries (SQLite's own busy handler's, then its last one repeated). */
const PAUSES_MS = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];

/** Statements that found another connection holding the lock and waited, and the seconds they waited in all. */
export interface LockWaits {
  waits: number;
  seconds: number;
}

/**
 * Whether SQLite refused for another connection's lock (what outlasted BUSY_WAIT_MS, once it reaches
 * the caller): the codes that waiting can outlast, not SQLITE_BUSY_SNAPSHOT, which needs a new transaction.
 */
export function isDatabaseBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_RECOVERY' || code === 'SQLITE_BUSY_TIMEOUT';
}

/** The caller's hold on the connection, let go while it waits so that others' queries run meanwhile. */
export interface HeldConnection {
  release(): void;
  reacquire(): Promise<void>;
}

/**
 * Runs `attempt` until no other connection's lock refuses it, or until `waitMs` have passed.
 * `retryable` tells, after a refusal, whether trying again is safe: a statement refused outside any
 * transaction did nothing; inside one, the transaction is the caller's to undo. A statement that
 * waited is counted in `waits`, however it ended. Between tries the connection is `held`'s to lend:
 * reads need no lock in WAL mode, so they do not wait behind a writer waiting for one.
 */
export async function whenNotBusy<T>(attempt: () => T | Promise<T>, retryable: () => boolean, waits?: LockWaits, held?: HeldConnection, waitMs = BUSY_WAIT_MS): Promise<T> {
  let refusedAt: number | undefined;
  try {
    for (let tries = 0; ; tries++) {
      try {
        return await attempt();
      } catch (err) {
        const pause = PAUSES_MS[Math.min(tries, PAUSES_MS.length - 1)]!;
        if (!isDatabaseBusy(err) || !retryable()) throw err;
        refusedAt ??= performance.now();
        if (performance.now() + pause > refusedAt + waitMs) throw err;
        held?.release();
        await new Promise<void>((resolve) => setTimeout(resolve, pause));
        await held?.reacquire();
      }
    }
  } finally {
    if (waits && refusedAt !== undefined) {
      waits.waits += 1;
      waits.seconds += (performance.now() - refusedAt) / 1000;
    }
  }
}
