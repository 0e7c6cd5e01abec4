import type { Store } from '../../storage/index.js';
import type { Notifier } from './notifier.js';

export interface StreamTx {
  /** The store, in this transaction. */
  store: Store;
  /**
   * This transaction's position in the global stream, for a change `userId`'s syncs must see. The
   * position is taken at the first call (which serialises writers until the commit: call it as late
   * as the change allows) and is the same for every user; each user named is woken after the commit.
   */
  position(userId: string): Promise<number>;
  /** The same position, for a change every member of `roomId` must see (receipts, typing); wakes the room's syncs. */
  roomPosition(roomId: string): Promise<number>;
  /**
   * The position taken by the caller's own statement `take`, one that advances the stream head and
   * writes with it (one round trip where `position` then a write are two); as the transaction's
   * first position only. Wakes `wake`'s user or room as `position` / `roomPosition` do.
   */
  takePosition<T extends { position: number }>(wake: { userId: string } | { roomId: string }, take: () => Promise<T>): Promise<T>;
}

/** Runs a change to the stream in one transaction, and wakes the syncs it concerns once it is committed. */
export class StreamWriter {
  constructor(
    private readonly store: Store,
    private readonly notifier: Notifier,
  ) {}

  /** Wakes the syncs of a change committed at `position` by one statement of its own, outside `write`. */
  committed(position: number, wake: { userId: string } | { roomId: string }): void {
    this.notifier.notify({ position, users: 'userId' in wake ? [wake.userId] : [], rooms: 'roomId' in wake ? [wake.roomId] : [] });
  }

  async write<T>(fn: (tx: StreamTx) => Promise<T>): Promise<T> {
    const users = new Set<string>();
    const rooms = new Set<string>();
    let position: Promise<number> | undefined;
    const result = await this.store.transaction(async (store) => {
      users.clear();
      rooms.clear();
      position = undefined;
      return fn({
        store,
        position: (userId) => {
          users.add(userId);
          position ??= store.streams.advance();
          return position;
        },
        roomPosition: (roomId) => {
          rooms.add(roomId);
          position ??= store.streams.advance();
          return position;
        },
        takePosition: (wake, take) => {
          if (position) throw new Error('the stream position is taken already in this transaction');
          if ('userId' in wake) users.add(wake.userId);
          else rooms.add(wake.roomId);
          const taken = take();
          position = taken.then((t) => t.position);
          return taken;
        },
      });
    });
    if (position) this.notifier.notify({ position: await position, users, rooms });
    return result;
  }
}
