import type { Kysely, Selectable } from 'kysely';
import { HotQuery } from './compiled.js';
import type { Engine } from './db.js';
import type { Database } from './schema.js';

/**
 * Messages waiting to be sent (or sent recently). A pending message has a next_attempt_ts; a sent
 * or dead one has none, and no payload either (it held the secret link and code).
 */
export interface OutboxTable {
  id: string;
  /** 'email', 'sms', ... */
  channel: string;
  /** Unique when set: at most one message per key is ever queued. */
  dedupe_key: string | null;
  /** JSON of the rendered message, encrypted (delivery/payload-seal.ts); null once sent or dead. */
  payload: string | null;
  attempts: number;
  /** When the message is next due; while a worker holds it, when its lease ends. Null when done. */
  next_attempt_ts: number | null;
  /** The lease of the worker sending it now; also a fencing token for that worker's updates. */
  locked_until: number | null;
  sent_ts: number | null;
  dead_ts: number | null;
  last_error: string | null;
  created_ts: number;
}

export type OutboxRow = Selectable<OutboxTable>;

/** A message a worker has claimed: it alone may send it until `lockedUntil`. */
export interface ClaimedMessage {
  id: string;
  channel: string;
  payload: string;
  /** Tries so far, this one included. */
  attempts: number;
  lockedUntil: number;
}

const INSERT = new HotQuery((db: Kysely<Database>, id: string, channel: string, dedupeKey: string | null, payload: string, now: number) =>
  db
    .insertInto('outbox')
    .values({
      id,
      channel,
      dedupe_key: dedupeKey,
      payload,
      attempts: 0,
      next_attempt_ts: now,
      locked_until: null,
      sent_ts: null,
      dead_ts: null,
      last_error: null,
      created_ts: now,
    })
    .onConflict((oc) => oc.column('dedupe_key').doNothing())
    .returning('id'),
);

const MARK_SENT = new HotQuery((db: Kysely<Database>, id: string, lockedUntil: number, now: number) =>
  db
    .updateTable('outbox')
    .set({ sent_ts: now, payload: null, next_attempt_ts: null, locked_until: null, last_error: null })
    .where('id', '=', id)
    .where('locked_until', '=', lockedUntil),
);

export class OutboxRepo {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly engine: Engine,
  ) {}

  /** Queues a message; false when `dedupeKey` is already used (no error, so a transaction stays usable). */
  async insert(message: { id: string; channel: string; dedupeKey?: string; payload: string; now: number }): Promise<boolean> {
    const { rows } = await INSERT.execute(this.db, message.id, message.channel, message.dedupeKey ?? null, message.payload, message.now);
    return rows.length > 0;
  }

  /**
   * Claims up to `limit` due messages of the given channels for `leaseMs`, in one statement, so that each due message goes
   * to exactly one of several workers. Postgres skips rows another worker is claiming right now; on
   * SQLite the statement holds the database's write lock. A worker that dies mid-send loses its
   * lease, and the message becomes due again when the lease ends.
   */
  async claimDue(now: number, leaseMs: number, limit: number, channels: string[]): Promise<ClaimedMessage[]> {
    if (channels.length === 0) return [];
    const lockedUntil = now + leaseMs;
    let due = this.db
      .selectFrom('outbox')
      .select('id')
      .where('next_attempt_ts', '<=', now)
      .where('channel', 'in', channels)
      .orderBy('next_attempt_ts')
      .limit(limit);
    if (this.engine === 'postgres') due = due.forUpdate().skipLocked();
    const rows = await this.db
      .updateTable('outbox')
      .set((eb) => ({ locked_until: lockedUntil, next_attempt_ts: lockedUntil, attempts: eb('attempts', '+', 1) }))
      .where('id', 'in', due)
      .where('payload', 'is not', null)
      .returning(['id', 'channel', 'payload', 'attempts'])
      .execute();
    return rows.map((r) => ({ id: r.id, channel: r.channel, payload: r.payload!, attempts: r.attempts, lockedUntil }));
  }

  /** Marks a claimed message sent and forgets its content. False when the lease was lost meanwhile. */
  async markSent(message: ClaimedMessage, now: number): Promise<boolean> {
    const result = await MARK_SENT.execute(this.db, message.id, message.lockedUntil, now);
    return Number(result.numAffectedRows ?? 0) > 0;
  }

  /** Releases a claimed message to be tried again at `nextAttemptTs`. */
  async markRetry(message: ClaimedMessage, nextAttemptTs: number, error: string): Promise<void> {
    await this.db
      .updateTable('outbox')
      .set({ next_attempt_ts: nextAttemptTs, locked_until: null, last_error: error })
      .where('id', '=', message.id)
      .where('locked_until', '=', message.lockedUntil)
      .execute();
  }

  /** Gives up on a claimed message for good, and forgets its content. */
  async markDead(message: ClaimedMessage, now: number, error: string): Promise<void> {
    await this.db
      .updateTable('outbox')
      .set({ dead_ts: now, payload: null, next_attempt_ts: null, locked_until: null, last_error: error })
      .where('id', '=', message.id)
      .where('locked_until', '=', message.lockedUntil)
      .execute();
  }

  /** When the next pending message is due (or its lease ends); undefined when the queue is empty. */
  async nextDueTs(channels: string[]): Promise<number | undefined> {
    if (channels.length === 0) return undefined;
    const row = await this.db
      .selectFrom('outbox')
      .select((eb) => eb.fn.min('next_attempt_ts').as('next'))
      .where('next_attempt_ts', 'is not', null)
      .where('channel', 'in', channels)
      .executeTakeFirst();
    return row?.next === null || row?.next === undefined ? undefined : Number(row.next);
  }

  /** Deletes sent and dead messages created before `before`. */
  async prune(before: number): Promise<number> {
    const result = await this.db.deleteFrom('outbox').where('created_ts', '<', before).where('next_attempt_ts', 'is', null).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  get(id: string): Promise<OutboxRow | undefined> {
    return this.db.selectFrom('outbox').selectAll().where('id', '=', id).executeTakeFirst();
  }

  findByDedupeKey(dedupeKey: string): Promise<OutboxRow | undefined> {
    return this.db.selectFrom('outbox').selectAll().where('dedupe_key', '=', dedupeKey).executeTakeFirst();
  }

  /** Per channel: how many messages are waiting (or being sent), and when the oldest of them was queued. */
  async pendingByChannel(): Promise<{ channel: string; pending: number; oldestTs: number }[]> {
    const rows = await this.db
      .selectFrom('outbox')
      .select((eb) => ['channel', eb.fn.countAll<number>().as('n'), eb.fn.min('created_ts').as('oldest')])
      .where('next_attempt_ts', 'is not', null)
      .groupBy('channel')
      .execute();
    return rows.map((r) => ({ channel: r.channel, pending: Number(r.n), oldestTs: Number(r.oldest) }));
  }

  async countPending(): Promise<number> {
    const row = await this.db
      .selectFrom('outbox')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('next_attempt_ts', 'is not', null)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }
}
