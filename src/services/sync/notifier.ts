import { randomToken } from '../../crypto/tokens.js';
import type { StreamChannel, StreamNotice } from '../../storage/stream-channel.js';

interface Waiter {
  wake(): void;
  /** Rooms changed while the waiter did not yet know its rooms. */
  seen?: Set<string>;
}

/** A waiter registered before the caller looks at the stream, so that no change can slip between. */
export interface Subscription {
  /** Resolves on a change for the user or one of the rooms, after `ms`, or when the notifier closes. */
  wait(ms: number): Promise<void>;
  dispose(): void;
}

/**
 * A subscription taken before the caller knows which rooms to listen to: until `listen` names them
 * it records the rooms of every change, so that one committed between the caller's read and `listen`
 * (told here late, by another process) still wakes it.
 */
export interface PendingSubscription extends Subscription {
  /** Listens to these rooms from now on, and counts as woken if one of them changed since the subscription. */
  listen(roomIds: Iterable<string>): void;
}

/** What a committed change concerns: its position in the global stream, and whose syncs it wakes. */
export interface StreamChange {
  position: number;
  users?: Iterable<string>;
  rooms?: Iterable<string>;
}

/**
 * Told of every change this process hears of, its own and (through the channel) the other
 * processes', after it committed; and of when some may have been missed (the channel reconnected).
 * For caches that must forget what a change made stale.
 */
export interface ChangeListener {
  changed(change: StreamChange): void;
  missed(): void;
}

/** Waiters by key (a user ID or a room ID). */
class WaiterIndex {
  private readonly byKey = new Map<string, Set<Waiter>>();

  add(key: string, waiter: Waiter): void {
    let set = this.byKey.get(key);
    if (!set) this.byKey.set(key, (set = new Set()));
    set.add(waiter);
  }

  delete(key: string, waiter: Waiter): void {
    const set = this.byKey.get(key);
    if (set?.delete(waiter) && set.size === 0) this.byKey.delete(key);
  }

  collect(keys: Iterable<string> | undefined, into: Set<Waiter>): void {
    if (keys) for (const key of keys) for (const waiter of this.byKey.get(key) ?? []) into.add(waiter);
  }

  all(into: Set<Waiter>): void {
    for (const set of this.byKey.values()) for (const waiter of set) into.add(waiter);
  }
}

/**
 * Wakes long-polling syncs when the stream moves for their user or for one of their rooms. A
 * waiting sync is one timer and one closure: no polling. Across processes sharing Postgres,
 * changes arrive through a StreamChannel.
 */
export class Notifier {
  private readonly users = new WaiterIndex();
  private readonly rooms = new WaiterIndex();
  /** Waiters that do not know their rooms yet (PendingSubscription). */
  private readonly pending = new Set<Waiter>();
  private count = 0;
  private closed = false;
  private active = 0;
  private drained: (() => void) | undefined;
  private channel: StreamChannel | undefined;
  private latest = 0;
  private readonly listeners: ChangeListener[] = [];
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
    return this.count;
  }

  /** The highest stream position this process has been told of, here or by another process. */
  get latestPosition(): number {
    return this.latest;
  }

  subscribe(userId: string, roomIds: Iterable<string> = []): Subscription {
    return this.open(userId, [...roomIds], false);
  }

  /** Wakes on a change for the user; the rooms to listen to are named later (PendingSubscription). */
  subscribeBeforeRooms(userId: string): PendingSubscription {
    return this.open(userId, [], true);
  }

  private open(userId: string, initialRooms: string[], pending: boolean): PendingSubscription {
    let woken = false;
    let resolve: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    const waiter: Waiter = {
      wake: () => {
        woken = true;
        resolve?.();
      },
    };
    const rooms = [...initialRooms];
    this.users.add(userId, waiter);
    for (const room of rooms) this.rooms.add(room, waiter);
    if (pending) {
      waiter.seen = new Set();
      this.pending.add(waiter);
    }
    this.count++;
    let disposed = false;
    const dispose = () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      resolve = undefined;
      if (disposed) return;
      disposed = true;
      this.count--;
      this.users.delete(userId, waiter);
      for (const room of rooms) this.rooms.delete(room, waiter);
      this.pending.delete(waiter);
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
      listen: (roomIds) => {
        if (disposed || !waiter.seen) return;
        const seen = waiter.seen;
        waiter.seen = undefined;
        this.pending.delete(waiter);
        for (const room of roomIds) {
          rooms.push(room);
          this.rooms.add(room, waiter);
          if (seen.has(room)) woken = true;
        }
      },
    };
  }

  /** Tells `listener` of every change from now on (see ChangeListener). */
  listen(listener: ChangeListener): void {
    this.listeners.push(listener);
  }

  /** Wakes this process's waiters for these users and rooms. */
  wakeLocal(change: StreamChange): void {
    if (change.position > this.latest) this.latest = change.position;
    for (const listener of this.listeners) listener.changed(change);
    const woken = new Set<Waiter>();
    const rooms = this.pending.size > 0 && change.rooms ? [...change.rooms] : change.rooms;
    this.users.collect(change.users, woken);
    this.rooms.collect(rooms, woken);
    if (rooms) for (const waiter of this.pending) for (const room of rooms) waiter.seen?.add(room);
    for (const waiter of woken) waiter.wake();
  }

  /** Wakes every waiter here: changes may have been missed (and on close). */
  wakeAll(): void {
    for (const listener of this.listeners) listener.missed();
    const woken = new Set<Waiter>();
    this.users.all(woken);
    for (const waiter of woken) waiter.wake();
  }

  /** Call after the change committed: wakes waiters here and in every other process. */
  notify(change: StreamChange): void {
    const users = [...(change.users ?? [])];
    const rooms = [...(change.rooms ?? [])];
    if (users.length === 0 && rooms.length === 0) return;
    this.wakeLocal({ position: change.position, users, rooms });
    const notice: StreamNotice = { position: change.position, users, rooms };
    this.channel?.publish(notice).catch(() => undefined);
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
