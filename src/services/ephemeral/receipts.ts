import type { Clock } from '../../clock.js';
import { invalidParam } from '../../errors.js';
import type { EventRow } from '../../storage/events.js';
import type { Store } from '../../storage/index.js';
import type { ReceiptRow } from '../../storage/receipts.js';
import type { MemberRow } from '../../storage/rooms.js';
import type { ChangeListener } from '../sync/notifier.js';
import type { StreamWriter } from '../sync/stream-writer.js';
import { ReceiptBatches } from './receipt-batches.js';
import { requireJoined, visibleEvent } from './room-member.js';
import { MAIN_THREAD, receiptFitsThread } from './threads.js';

export const READ = 'm.read';
export const READ_PRIVATE = 'm.read.private';
export const FULLY_READ = 'm.fully_read';
/** What POST /receipt takes; m.fully_read is the read marker, kept in room account data. */
export const RECEIPT_TYPES = [READ, READ_PRIVATE, FULLY_READ] as const;
export type ReceiptType = (typeof RECEIPT_TYPES)[number];

/** A user's read receipt as the push rules' unread counts need it. */
export interface ReadReceipt {
  type: typeof READ | typeof READ_PRIVATE;
  eventId: string;
  /** The stream position of the event read up to: everything at or before it is read. */
  eventPos: number;
  /** undefined for an unthreaded receipt, else `main` or a thread root's event ID. */
  threadId: string | undefined;
  ts: number;
}

/** Called in the transaction that stores a receipt that moved forwards (e.g. to clear unread counts). */
export type ReceiptHook = (store: Store, receipt: ReceiptRow) => Promise<void>;
/**
 * PostgreSQL: a statement's text (values written in) to run after a receipt's write in its own round
 * trip, guarded to change nothing unless the receipt moved (see ReceiptsRepo.putAllAtNextPosition).
 */
export type ReceiptStatement = (receipt: Omit<ReceiptRow, 'stream_pos'>) => string;

export interface ReadMarkers {
  fullyRead?: string;
  read?: string;
  readPrivate?: string;
}

function toReadReceipt(row: ReceiptRow): ReadReceipt {
  return {
    type: row.receipt_type as ReadReceipt['type'],
    eventId: row.event_id,
    eventPos: Number(row.event_pos),
    threadId: row.thread_id === '' ? undefined : row.thread_id,
    ts: Number(row.ts),
  };
}

/**
 * Read receipts (public m.read, m.read.private seen only by their owner, threaded or not) and the
 * fully-read marker. Each keeps only the newest per room, user, type and thread, and never moves
 * backwards: a receipt for an event before the one already acknowledged changes nothing, as in Synapse.
 */
export class ReceiptService {
  private readonly hooks: ReceiptHook[] = [];
  /** Called with the user and the position once a read receipt of theirs moved and is committed (badge pushes). */
  readonly moved: ((userId: string, position: number) => void)[] = [];
  private readonly statements: ReceiptStatement[] = [];
  private readonly batches: ReceiptBatches;
  /** Clients repeat a receipt on the event they last sent it for (every few seconds, per device): answered from here. */
  private readonly seen = new SeenReceipts();

  constructor(
    private readonly store: Store,
    private readonly writer: StreamWriter,
    private readonly clock: Clock,
  ) {
    this.batches = new ReceiptBatches(store.receipts);
  }

  /** Forgets what it saw of users whose membership may have changed (see SeenReceipts). */
  readonly changes: ChangeListener = {
    changed: (change) => {
      if (change.users) this.seen.forget(change.users);
    },
    missed: () => this.seen.forgetAll(),
  };

  /** Runs `hook` for every receipt stored from now on, inside its transaction. */
  onReceipt(hook: ReceiptHook): void {
    this.hooks.push(hook);
  }

  /**
   * PostgreSQL: runs `statement` with every receipt from now on, in the receipt's own round trip.
   * While only these are registered, a receipt's write is one round trip, shared with the receipts
   * that arrived meanwhile (ReceiptBatches), and the global stream position's lock is never held
   * across a round trip to this process.
   */
  onReceiptStatement(statement: ReceiptStatement): void {
    if (this.store.db.engine !== 'postgres') throw new Error('receipt statements are for PostgreSQL');
    this.statements.push(statement);
  }

  /** POST /rooms/{roomId}/receipt/{receiptType}/{eventId}. */
  async send(userId: string, roomId: string, type: ReceiptType, eventId: string, threadId: string | undefined): Promise<void> {
    if (threadId !== undefined && type === FULLY_READ) throw invalidParam(`thread_id is not compatible with ${FULLY_READ} receipts`);
    // The receipt this process last saw there is on this very event, by a member (both were checked
    // then, and the entry is forgotten when their membership changes): nothing can move, whatever
    // another process stored since (receipts only move forwards). No statement at all.
    if (type !== FULLY_READ && this.seen.isAt(roomId, type, userId, threadId ?? '', eventId)) return;
    const mark = this.seen.mark(userId);
    const member = await requireJoined(this.store, roomId, userId);
    const event = await visibleEvent(this.store, member, eventId);
    if (threadId !== undefined && !(await receiptFitsThread(this.store, event, threadId))) {
      throw invalidParam(`event_id ${eventId} is not related to thread ${threadId}`);
    }
    if (type === FULLY_READ) await this.moveFullyRead(member, event);
    else await this.write(member, type, threadId ?? '', event, mark);
  }

  /** POST /rooms/{roomId}/read_markers: every event is checked before anything is written. */
  async setReadMarkers(userId: string, roomId: string, markers: ReadMarkers): Promise<void> {
    const mark = this.seen.mark(userId);
    const member = await requireJoined(this.store, roomId, userId);
    const event = async (id: string | undefined) => (id === undefined ? undefined : visibleEvent(this.store, member, id));
    const [fullyRead, read, readPrivate] = [await event(markers.fullyRead), await event(markers.read), await event(markers.readPrivate)];
    if (fullyRead) await this.moveFullyRead(member, fullyRead);
    if (read) await this.write(member, READ, '', read, mark);
    if (readPrivate) await this.write(member, READ_PRIVATE, '', readPrivate, mark);
  }

  /**
   * The furthest of the user's m.read and m.read.private receipts in the room that cover the main
   * timeline (unthreaded or `main`); undefined when they sent none.
   */
  async latestReadReceipt(userId: string, roomId: string): Promise<ReadReceipt | undefined> {
    const rows = (await this.store.receipts.ofUser(roomId, userId, [READ, READ_PRIVATE])).filter((r) => r.thread_id === '' || r.thread_id === MAIN_THREAD);
    const newest = rows.reduce<ReceiptRow | undefined>((best, r) => (!best || Number(r.event_pos) > Number(best.event_pos) ? r : best), undefined);
    return newest ? toReadReceipt(newest) : undefined;
  }

  /** Every read receipt of the user in the room, each thread's and the unthreaded ones. */
  async readReceipts(userId: string, roomId: string): Promise<ReadReceipt[]> {
    return (await this.store.receipts.ofUser(roomId, userId, [READ, READ_PRIVATE])).map(toReadReceipt);
  }

  /** `mark`: read off the seen receipts before the membership was checked (see SeenReceipts). */
  private async write(member: MemberRow, type: typeof READ | typeof READ_PRIVATE, threadId: string, event: EventRow, mark: SeenMark): Promise<void> {
    const { room_id: roomId, user_id: userId } = member;
    const eventPos = Number(event.stream_pos);
    // A receipt at or after this event is stored already: nothing moves, and no stream position is
    // taken. What this process saw answers without a read (it never runs ahead of the database);
    // when it saw an earlier event, the receipt most likely moves, and the write decides.
    const seen = this.seen.at(roomId, type, userId, threadId);
    if (seen !== undefined && seen.eventPos >= eventPos) return;
    if (seen === undefined) {
      const existing = await this.store.receipts.get(roomId, type, userId, threadId);
      if (existing) this.seen.set(mark, roomId, type, userId, threadId, existing.event_id, Number(existing.event_pos));
      if (existing && Number(existing.event_pos) >= eventPos) return;
    }
    // A private receipt wakes only its owner's syncs; a public one every member's.
    const wake = type === READ_PRIVATE ? { userId } : { roomId };
    const receipt = { room_id: roomId, receipt_type: type, user_id: userId, thread_id: threadId, event_id: event.event_id, event_pos: eventPos, ts: this.clock.now() };
    if (this.store.db.engine === 'postgres' && this.hooks.length === 0 && !this.store.inTransaction) {
      const { position, written } = await this.batches.put(
        receipt,
        this.statements.map((statement) => statement(receipt)),
      );
      if (!written) return;
      this.seen.set(mark, roomId, type, userId, threadId, event.event_id, eventPos);
      this.writer.committed(position, wake);
      for (const callback of this.moved) callback(userId, position);
      return;
    }
    const moved = await this.writer.write(async (tx) => {
      // The stream position serialises writers: whether the receipt moves is decided against the latest committed one.
      const { position, written } = await tx.takePosition(wake, () => tx.store.receipts.putAtNextPosition(receipt));
      if (!written) return undefined;
      const row: ReceiptRow = { ...receipt, stream_pos: position };
      for (const hook of this.hooks) await hook(tx.store, row);
      tx.store.afterCommit(() => this.seen.set(mark, roomId, type, userId, threadId, event.event_id, eventPos));
      return position;
    });
    if (moved !== undefined) for (const callback of this.moved) callback(userId, moved);
  }

  /** The m.fully_read room account data, moved forwards only (Synapse's read marker handler does the same). */
  private async moveFullyRead(member: MemberRow, event: EventRow): Promise<void> {
    const { room_id: roomId, user_id: userId } = member;
    const eventPos = Number(event.stream_pos);
    if ((await fullyReadPos(this.store, userId, roomId)) >= eventPos) return;
    await this.writer.write(async (tx) => {
      const position = await tx.position(userId);
      if ((await fullyReadPos(tx.store, userId, roomId)) >= eventPos) return;
      await tx.store.accountData.put(userId, roomId, FULLY_READ, JSON.stringify({ event_id: event.event_id }), position);
    });
  }
}

/** The stream position of the event the user's read marker is at; -1 for none (or one no longer known). */
async function fullyReadPos(store: Store, userId: string, roomId: string): Promise<number> {
  const json = await store.accountData.get(userId, roomId, FULLY_READ);
  const eventId = json === undefined ? undefined : (JSON.parse(json) as { event_id?: unknown }).event_id;
  const row = typeof eventId === 'string' ? await store.events.get(eventId) : undefined;
  return row ? Number(row.stream_pos) : -1;
}

/** A receipt's event, and that event's stream position. */
interface SeenReceipt {
  eventId: string;
  eventPos: number;
}

interface SeenMark {
  clears: number;
  forgets: number;
}

/**
 * The event of the receipts this process stored or read lately, per room, type, user and thread, of
 * users it found joined to the room. An entry may lag behind the database (another process moved the
 * receipt since), never run ahead: it names an event the receipt was at, so a receipt on that same
 * event is never a move, and it answers one without a statement.
 *
 * The membership checked with it goes stale only through a member event, whose write (in any process)
 * names the user in its stream notice: every notice naming a user forgets that user's entries, and a
 * notice possibly missed forgets them all. An entry from a check that began before such a forget is
 * not kept (`mark`). What is left is the notice's own delay from another process, a few
 * milliseconds in which a receipt repeated on the same event, which changes nothing, is answered as
 * if it had come just before the membership changed. (A forced purge of a room, which deletes its
 * memberships without member events, is not noticed; receipts repeated there stay no-ops.)
 */
class SeenReceipts {
  private static readonly LIMIT = 50_000;
  /** Per user, per room, type and thread. */
  private readonly users = new Map<string, Map<string, SeenReceipt>>();
  private size = 0;
  /** Per user, how often they were forgotten (since `clears` last moved): an entry from a check begun before one is not kept. */
  private readonly forgets = new Map<string, number>();
  private clears = 0;

  private static key(roomId: string, type: string, threadId: string): string {
    return `${roomId}\u0000${type}\u0000${threadId}`;
  }

  isAt(roomId: string, type: string, userId: string, threadId: string, eventId: string): boolean {
    return this.at(roomId, type, userId, threadId)?.eventId === eventId;
  }

  at(roomId: string, type: string, userId: string, threadId: string): SeenReceipt | undefined {
    return this.users.get(userId)?.get(SeenReceipts.key(roomId, type, threadId));
  }

  /** Read before the user's membership is checked, for `set`. */
  mark(userId: string): SeenMark {
    return { clears: this.clears, forgets: this.forgets.get(userId) ?? 0 };
  }

  /** Keeps the receipt's event, unless the user was forgotten since `mark`. */
  set(mark: SeenMark, roomId: string, type: string, userId: string, threadId: string, eventId: string, eventPos: number): void {
    if (mark.clears !== this.clears || mark.forgets !== (this.forgets.get(userId) ?? 0)) return;
    if (this.size >= SeenReceipts.LIMIT) this.forgetAll();
    let events = this.users.get(userId);
    if (!events) this.users.set(userId, (events = new Map()));
    const key = SeenReceipts.key(roomId, type, threadId);
    if (!events.has(key)) this.size += 1;
    events.set(key, { eventId, eventPos });
  }

  forget(userIds: Iterable<string>): void {
    for (const userId of userIds) {
      this.forgets.set(userId, (this.forgets.get(userId) ?? 0) + 1);
      const events = this.users.get(userId);
      if (!events) continue;
      this.size -= events.size;
      this.users.delete(userId);
    }
    if (this.forgets.size > SeenReceipts.LIMIT) this.forgetAll();
  }

  forgetAll(): void {
    this.users.clear();
    this.size = 0;
    this.forgets.clear();
    this.clears += 1;
  }
}
