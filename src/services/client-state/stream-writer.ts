import type { ClientStateRepos } from '../../storage/client-state.js';
import type { Store } from '../../storage/index.js';
import type { Notifier } from './notifier.js';

export interface StreamTx {
  repos: ClientStateRepos;
  /** The whole store, in the same transaction. */
  store: Store;
  /** The position of this transaction's change in the user's stream (one per user per transaction). */
  position(userId: string): Promise<number>;
}

/** Runs a change to users' streams in one transaction, and wakes their syncs once it is committed. */
export class StreamWriter {
  constructor(
    private readonly store: Store,
    private readonly notifier: Notifier,
  ) {}

  async write<T>(fn: (tx: StreamTx) => Promise<T>): Promise<T> {
    const touched = new Map<string, number>();
    const result = await this.store.transaction(async (store) => {
      touched.clear();
      return fn({
        repos: store.clientState,
        store,
        position: async (userId) => {
          let pos = touched.get(userId);
          if (pos === undefined) {
            pos = await store.clientState.streams.advance(userId);
            touched.set(userId, pos);
          }
          return pos;
        },
      });
    });
    this.notifier.notify([...touched.keys()]);
    return result;
  }
}

/** Sync tokens: opaque to clients, "s<position>" to us. */
export function streamToken(position: number): string {
  return `s${position}`;
}

export function parseStreamToken(token: string): number | undefined {
  const match = /^s(\d{1,15})$/.exec(token);
  return match ? Number(match[1]) : undefined;
}
