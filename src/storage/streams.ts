import { sql, type Kysely } from 'kysely';
import { HotQuery } from './compiled.js';
import type { Database } from './schema.js';

/**
 * The global stream: one sequence of positions shared by every change that sync reports (account
 * data, to-device messages, device-list changes, and room events to come), whoever it is for.
 *
 * `advance` increments the single stream_head row. On PostgreSQL the UPDATE holds that row's lock
 * until the transaction ends, so the next writer gets its position only once this one has
 * committed or rolled back: positions are handed out, and become visible, in commit order. A reader
 * that sees head P therefore sees every change at or below P already committed, and a sync can ask
 * for `pos > since AND pos <= head` without missing a change that commits later with a lower
 * position. A rolled-back transaction gives its position back. On SQLite writes are serialised
 * anyway.
 *
 * The cost: writers that take a position run one at a time, from taking it to their commit. So a
 * transaction takes it as late as it can (StreamWriter takes it lazily, at first use). Should that
 * lock ever be the bottleneck, the sync token's format leaves room for a position per writer
 * (Synapse's MultiWriterIdGenerator: each writer its own sequence, a token carries a vector of
 * positions), without breaking tokens issued today.
 */
const ADVANCE = new HotQuery((db: Kysely<Database>) => db.updateTable('stream_head').set({ position: sql<number>`position + 1` }).returning('position'));

const HEAD = new HotQuery((db: Kysely<Database>) => db.selectFrom('stream_head').select('position'));

/** Takes the next global position (see StreamsRepo); for a repository writing at it in the caller's transaction. */
export async function advanceStream(db: Kysely<Database>): Promise<number> {
  return Number((await ADVANCE.execute(db)).rows[0]!.position);
}

export class StreamsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /** Takes the next global position; call inside the transaction that writes the change. */
  advance(): Promise<number> {
    return advanceStream(this.db);
  }

  /** The latest committed position. */
  async head(): Promise<number> {
    return Number((await HEAD.execute(this.db)).rows[0]!.position);
  }

  /**
   * The global position of position `legacy` in `userId`'s own stream from before the global one.
   * A position beyond what that stream reached is taken as its head, as the per-user stream did.
   */
  async fromLegacy(userId: string, legacy: number): Promise<number> {
    const row = await this.db.selectFrom('legacy_stream_offsets').select(['stream_offset', 'legacy_head']).where('user_id', '=', userId).executeTakeFirst();
    if (!row) return 0;
    return Number(row.stream_offset) + Math.min(legacy, Number(row.legacy_head));
  }
}
