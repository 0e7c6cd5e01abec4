import { statSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import SQLite from 'better-sqlite3';
import type { CheckpointReply, CheckpointRequest, CheckpointTarget } from './checkpoint.js';

/**
 * The checkpoint thread (see checkpoint.ts), one connection per database. A connection has no busy
 * timeout: a checkpoint that cannot have the locks it needs gives up at once and is tried again on
 * a later poll, so this thread never waits on the homeserver's connection, nor makes it wait
 * longer than one copy.
 *
 * - Every `intervalMs`, or sooner once the WAL grew by a quarter of its bound, a PASSIVE
 *   checkpoint: it copies what is in the WAL into the database file while writers go on.
 * - When everything was copied and nothing was committed since the previous checkpoint (idle), or
 *   when the WAL is past its bound, a TRUNCATE checkpoint: the next write starts the WAL afresh
 *   from an empty file. That takes the write lock for the copy of the frames written since the
 *   PASSIVE checkpoint, so it follows only a PASSIVE one that copied everything and took under
 *   QUICK_MS: past the bound, PASSIVE checkpoints are repeated (each copies what was written during
 *   the one before) until one is that quick. A slow disk's long copy then never happens under the
 *   write lock, where writers would wait for it past their busy timeout and fail.
 */
const port = parentPort;
if (!port) throw new Error('checkpoint-main runs only as a worker thread');

/** A PASSIVE checkpoint this quick leaves a TRUNCATE one little to copy under the write lock. */
const QUICK_MS = 50;
/** PASSIVE checkpoints past the bound in one poll, at most, to reach a quick one. */
const MAX_PASSES = 4;

interface CheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

class Checkpointer {
  private readonly db: SQLite.Database;
  private timer: NodeJS.Timeout | undefined;
  private lastCheckpointAt = 0;
  private sizeAtCheckpoint = 0;
  private lastVersion: unknown;

  constructor(private readonly target: CheckpointTarget) {
    this.db = new SQLite(target.path, { timeout: 0 });
    this.db.pragma('synchronous = NORMAL');
    this.timer = setTimeout(() => this.poll(), target.pollMs);
  }

  private checkpoint(mode: 'PASSIVE' | 'TRUNCATE'): CheckpointResult | undefined {
    return (this.db.pragma(`wal_checkpoint(${mode})`) as CheckpointResult[])[0];
  }

  private walSize(): number {
    try {
      return statSync(`${this.target.path}-wal`).size;
    } catch {
      return 0;
    }
  }

  private poll(): void {
    const { intervalMs, sizeLimitBytes } = this.target;
    try {
      const size = this.walSize();
      const now = Date.now();
      const overLimit = size > sizeLimitBytes;
      const due = now - this.lastCheckpointAt >= intervalMs || size - this.sizeAtCheckpoint >= sizeLimitBytes / 4 || overLimit;
      if (size > 0 && due) {
        this.lastCheckpointAt = now;
        let quick = false;
        let copied = false;
        for (let pass = 0; pass < (overLimit ? MAX_PASSES : 1) && !quick; pass++) {
          const started = performance.now();
          const passive = this.checkpoint('PASSIVE');
          copied = passive !== undefined && passive.busy === 0 && passive.log === passive.checkpointed;
          quick = copied && performance.now() - started < QUICK_MS;
          if (!copied) break; // a reader holds older frames: more passes would copy nothing more
        }
        this.sizeAtCheckpoint = this.walSize();
        // Changes only when another connection committed since it was last read here.
        const version = this.db.pragma('data_version', { simple: true });
        const idle = version === this.lastVersion;
        this.lastVersion = version;
        if (quick && (overLimit || idle)) {
          if (this.checkpoint('TRUNCATE')?.busy === 0) this.sizeAtCheckpoint = 0;
        }
      }
    } catch {
      // SQLITE_BUSY and the like: a later poll tries again.
    }
    this.timer = setTimeout(() => this.poll(), this.target.pollMs);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.db.close();
  }
}

const databases = new Map<number, Checkpointer>();

port.on('message', (request: CheckpointRequest) => {
  if ('open' in request) {
    try {
      databases.set(request.open, new Checkpointer(request.target));
    } catch {
      // The homeserver's connection checkpoints for itself then; closing it is still answered.
      port.postMessage({ failed: request.open } satisfies CheckpointReply);
    }
  } else if ('close' in request) {
    try {
      databases.get(request.close)?.close();
    } finally {
      databases.delete(request.close);
      port.postMessage({ closed: request.close } satisfies CheckpointReply);
    }
  } else {
    for (const checkpointer of databases.values()) checkpointer.close();
    databases.clear();
    port.close();
  }
});
