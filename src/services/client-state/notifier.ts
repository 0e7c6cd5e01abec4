import { randomToken } from '../../crypto/tokens.js';
import type { StreamChannel } from '../../storage/stream-channel.js';

interface Waiter {
  wake(): void;
}

/** A waiter registered before the caller looks at the stream, so that no change can slip between. */
export interface Subscription {
  /** Resolves on a change for the user, after `ms`, or when the notifier closes. */
  wait(ms: number): Promise<void>;
  dispose(): void;
}

/**
 * Wakes long-polling syncs when a user's stream moves. A waiting sync is one timer and one closure:
 * no polling. Across processes sharing Postgres, changes arrive through a StreamChannel.
 */
export class Notifier {
  private readonly waiters = new Map<string, Set<Waiter>>();
  private closed = false;
  private active = 0;
  private drained: (() => void) | undefined;
  private channel: StreamChannel | undefined;
  /** Identifies this process in cross-process notifications. */
  readonly origin = randomToken(9);

  attach(channel: StreamChannel): void {
    this.channel = channel;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** How many syncs are waiting right now. */
  get waiting(): number {
    let n = 0;
    for (const set of this.waiters.values()) n += set.size;
    return n;
  }

  subscribe(userId: string): Subscription {
    let woken = false;
    let resolve: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    const waiter: Waiter = {
      wake: () => {
        woken = true;
        resolve?.();
      },
    };
    let set = this.waiters.get(userId);
    if (!set) this.waiters.set(userId, (set = new Set()));
    set.add(waiter);
    const dispose = () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      resolve = undefined;
      const current = this.waiters.get(userId);
      if (current) {
        current.delete(waiter);
        if (current.size === 0) this.waiters.delete(userId);
      }
    };
    return {
      wait: (ms) => {
        if (woken || this.closed || ms <= 0) return Promise.resolve();
        return new Promise<void>((done) => {
          resolve = done;
          timer = setTimeout(done, ms);
        });
      },
      dispose,
    };
  }

  /** Wakes this process's waiters for these users. */
  wakeLocal(userIds: Iterable<string>): void {
    for (const userId of userIds) {
      const set = this.waiters.get(userId);
      if (set) for (const waiter of [...set]) waiter.wake();
    }
  }

  wakeAll(): void {
    this.wakeLocal([...this.waiters.keys()]);
  }

  /** Call after the change committed: wakes waiters here and in every other process. */
  notify(userIds: readonly string[]): void {
    if (userIds.length === 0) return;
    this.wakeLocal(userIds);
    this.channel?.publish(userIds).catch(() => undefined);
  }

  /** Counts a long-poll as in progress until `work` settles, so that close() can wait for it. */
  async track<T>(work: () => Promise<T>): Promise<T> {
    this.active++;
    try {
      return await work();
    } finally {
      if (--this.active === 0) this.drained?.();
    }
  }

  /**
   * Releases every waiting sync, waits until they have answered, and refuses to wait again; for
   * shutdown. Answering before the HTTP server closes matters: a connection whose client gave up
   * and that is answered only after server.close() is kept until the keep-alive timeout.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.wakeAll();
    if (this.active > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5000);
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      // Let the handlers send what they returned.
      await new Promise((resolve) => setImmediate(resolve));
    }
    await this.channel?.close();
  }
}
