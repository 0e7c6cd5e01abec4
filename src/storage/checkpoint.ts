import type { Worker } from 'node:worker_threads';
import { startModuleThread } from '../delivery/worker-thread.js';

/** When the checkpoint thread copies a write-ahead log into its database file. */
export interface CheckpointOptions {
  /** A PASSIVE checkpoint at least this often while anything is in the WAL (default 1 s). */
  intervalMs?: number;
  /** How often the thread looks at the WAL file's size (default 100 ms). */
  pollMs?: number;
  /**
   * The WAL's bound (default 32 MiB): past it the thread checkpoints at once and truncates the WAL,
   * which holds writers back for the copy of what the PASSIVE checkpoint left (one fsync).
   */
  sizeLimitBytes?: number;
}

export interface CheckpointTarget {
  path: string;
  intervalMs: number;
  pollMs: number;
  sizeLimitBytes: number;
}

/** To the thread: start or stop checkpointing one database, or end. */
export type CheckpointRequest = { open: number; target: CheckpointTarget } | { close: number } | { exit: true };
/** From the thread: that database's connection is closed, or could not be opened. */
export type CheckpointReply = { closed: number } | { failed: number };

const CLOSE_GRACE_MS = 5_000;
/** How long the thread outlives its last database, for the next one to open (a restart, a test). */
const LINGER_MS = 5_000;

/** A database that lives in memory (or in a temporary file of its own connection), with no WAL to share. */
export function isPrivateDatabase(path: string): boolean {
  return path === '' || path === ':memory:' || path.startsWith('file::memory:') || /[?&]mode=memory(&|$)/.test(path);
}

/**
 * The process's one checkpoint thread, for every SQLite database it has open: starting a thread
 * under tsx costs about 400 ms of CPU (its loader runs in a thread of its own), too much to pay per
 * database when tests open dozens. It ends LINGER_MS after its last database closed, unless
 * another opens; idle, it holds nothing open, and never holds the process open.
 */
class CheckpointThread {
  private static current: CheckpointThread | undefined;
  private readonly worker: Worker;
  private readonly members = new Map<number, { onLost: () => void; closed?: () => void }>();
  private nextId = 0;
  private gone = false;
  private linger: NodeJS.Timeout | undefined;

  private constructor() {
    this.worker = startModuleThread(import.meta.url, './checkpoint-main', undefined);
    // The homeserver's lifetime is its HTTP listener's; this thread must not hold a process open.
    this.worker.unref();
    this.worker.on('error', () => undefined);
    this.worker.on('message', (reply: CheckpointReply) => {
      if ('closed' in reply) this.members.get(reply.closed)?.closed?.();
      else this.members.get(reply.failed)?.onLost();
    });
    this.worker.once('exit', () => {
      this.gone = true;
      if (CheckpointThread.current === this) CheckpointThread.current = undefined;
      // Died with databases still open: their connections checkpoint for themselves again.
      for (const member of this.members.values()) {
        if (member.closed) member.closed();
        else member.onLost();
      }
      this.members.clear();
    });
  }

  static join(target: CheckpointTarget, onLost: () => void): { thread: CheckpointThread; id: number } {
    const thread = (CheckpointThread.current ??= new CheckpointThread());
    if (thread.linger) clearTimeout(thread.linger);
    thread.linger = undefined;
    const id = thread.nextId++;
    thread.members.set(id, { onLost });
    thread.worker.postMessage({ open: id, target } satisfies CheckpointRequest);
    return { thread, id };
  }

  /** Closes one database's connection in the thread (its last checkpoint, if it was the last connection). */
  async leave(id: number): Promise<void> {
    const member = this.members.get(id);
    if (!member || this.gone) return;
    const closed = new Promise<void>((resolve) => (member.closed = resolve));
    const timer = setTimeout(() => void this.worker.terminate(), CLOSE_GRACE_MS);
    this.worker.postMessage({ close: id } satisfies CheckpointRequest);
    await closed;
    clearTimeout(timer);
    this.members.delete(id);
    if (this.members.size === 0 && !this.gone && !this.linger) {
      this.linger = setTimeout(() => this.end(), LINGER_MS);
      this.linger.unref();
    }
  }

  private end(): void {
    this.linger = undefined;
    if (this.members.size > 0 || this.gone) return;
    if (CheckpointThread.current === this) CheckpointThread.current = undefined;
    this.worker.postMessage({ exit: true } satisfies CheckpointRequest);
  }
}

/**
 * Checkpoints a SQLite database's write-ahead log from a thread, over a connection of its own, so
 * that no request waits for a checkpoint: the main connection runs with `wal_autocheckpoint = 0`,
 * where a checkpoint (copying the WAL into the database file and an fsync, about 8 ms on a slow
 * disk) would otherwise run inside whichever COMMIT crossed 1,000 pages. The thread does PASSIVE
 * checkpoints, which never block writers, and truncates the WAL when the database is idle or the
 * WAL outgrows its bound. See checkpoint-main.ts.
 */
export class WalCheckpointer {
  private closing: Promise<void> | undefined;

  private constructor(private readonly membership: { thread: CheckpointThread; id: number }) {}

  /**
   * Starts checkpointing the database file at `path`; undefined for an in-memory database.
   * `onLost` runs if the thread dies before close(): the caller then checkpoints itself again.
   */
  static start(path: string, onLost: () => void, options: CheckpointOptions = {}): WalCheckpointer | undefined {
    if (isPrivateDatabase(path)) return undefined;
    const target: CheckpointTarget = {
      path,
      intervalMs: options.intervalMs ?? 1_000,
      pollMs: options.pollMs ?? 100,
      sizeLimitBytes: options.sizeLimitBytes ?? 32 * 1024 * 1024,
    };
    return new WalCheckpointer(CheckpointThread.join(target, onLost));
  }

  /** Closes the thread's connection to the database (the last connection to close checkpoints and removes the WAL). */
  close(): Promise<void> {
    return (this.closing ??= this.membership.thread.leave(this.membership.id));
  }
}
