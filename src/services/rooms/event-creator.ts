import type { CompiledQuery } from 'kysely';
import type { Clock } from '../../clock.js';
import { forbidden, MatrixError, notFound } from '../../errors.js';
import { isTxnConflict, type EventRow, type NewEventRow, type TxnRecord } from '../../storage/events.js';
import type { Store } from '../../storage/index.js';
import { MAX_STATE_HOPS, type RoomRow } from '../../storage/rooms.js';
import type { JsonObject } from '../../validate.js';
import type { Notifier } from '../sync/notifier.js';
import { AuthError, authEventsSelection, authorize } from './auth-rules.js';
import type { EventSigner } from './event-signer.js';
import { recordRelations, relationOf } from './relations.js';
import { indexForSearch } from './search-index.js';
import { RoomHeadCache, type RoomHead } from './room-head-cache.js';
import { splitStateKey, stateKeyOf, type Pdu, type RoomVersionId, type StateKey, type StoredEvent } from './pdu.js';

/** The spec's limit on a whole PDU, in bytes of its canonical JSON. */
export const MAX_PDU_BYTES = 65_536;

/** What a client (or the server for it) asks to add to a room. */
export interface EventDraft {
  type: string;
  content: JsonObject;
  state_key?: string;
  /** For m.room.redaction: the event redacted (placed in content or at the top level as the version wants). */
  redacts?: string;
}

/** A write's client transaction ID already had an event when the write was to record it: the write was rolled back. */
export class TxnTaken extends Error {
  constructor() {
    super('the transaction ID already has an event');
  }
}

/** The history visibility when a room has none set. */
export const DEFAULT_HISTORY_VISIBILITY = 'shared';

export function eventFromRow(row: Pick<EventRow, 'event_id' | 'pdu'>): StoredEvent {
  return { ...(JSON.parse(row.pdu) as Pdu), event_id: row.event_id };
}

/** A room's current state events at these keys (those present): one read for the IDs, one for the events. */
export async function currentStateEvents(store: Store, roomId: string, keys: readonly StateKey[]): Promise<Map<StateKey, StoredEvent>> {
  const state = new Map<StateKey, StoredEvent>();
  if (keys.length === 0) return state;
  const rows = await store.rooms.currentStateIds(roomId, keys.map(splitStateKey));
  const events = new Map((await store.events.getMany(rows.map((r) => r.event_id))).map((row) => [row.event_id, eventFromRow(row)]));
  for (const row of rows) {
    const event = events.get(row.event_id);
    if (event) state.set(stateKeyOf(row.type, row.state_key), event);
  }
  return state;
}

/**
 * Work on each event in its room's write, before the event takes its stream position (push rules);
 * what it returns, if anything, is written in the same transaction once the event has its position.
 */
export type EventHook = (write: RoomWrite, event: StoredEvent) => Promise<PositionedWork | undefined>;

/** An event's place in its room's chain: its DAG edges, and the forward extremity it replaces. */
interface ChainLink {
  eventId: string;
  prevEvents: readonly string[];
  authEvents: readonly string[];
  previous: string | undefined;
}

/** Writes that need the event's stream position. */
export interface PositionedWork {
  atPosition(pos: number): Promise<void>;
  /**
   * The same as one statement for Store.deferToCommit, to follow the event's own: it takes the
   * position as the transaction took it last (the stream's row, which it holds).
   */
  atTakenPosition?(): CompiledQuery;
}

/**
 * One room's events being written in one transaction, with the room's row locked: each `append`
 * builds the next event on the room's single forward extremity, authorises it against the current
 * state, hashes and signs it, and stores it with the state after it.
 *
 * The room's head as this process last committed it (RoomHeadCache), when the locked row shows it
 * is still current, stands in for reading the state and the forward extremity from the database.
 */
export class RoomWrite {
  /** State read or written by this write, over `baseState`. */
  private readonly stateCache = new Map<StateKey, StoredEvent | null>();
  private readonly baseState: ReadonlyMap<StateKey, StoredEvent | null>;
  private depth: number;
  private stateGroup: number;
  private hops: number | undefined;
  private lastPos: number;
  private extremity: string | undefined;
  /** False while the room may have more forward extremities than `extremity` (a chain has one). */
  private singleExtremity: boolean;
  private historyVisibility: string | undefined;
  /** Messages appended but not stored yet: they take their stream positions last (see flush). */
  private readonly pending: Omit<NewEventRow, 'stream_pos'>[] = [];
  /** The pending messages as events, for their relations (stored with their positions). */
  private readonly pendingEvents: { event: StoredEvent; redacts: string | undefined; atPosition: PositionedWork[] }[] = [];
  /** The last message's DAG edges and forward extremity, not written yet (see writeChain). */
  private chain: ChainLink | undefined;
  /** The last message, stored with the commit (see finish): its row and its position once committed. */
  private withCommit: { row: Omit<NewEventRow, 'stream_pos'>; rows: Promise<{ position: number | string }[]> } | undefined;
  private txn: TxnRecord | undefined;
  /** Whether the room's row already holds this write's head (written with its last event). */
  private roomAdvanced = true;
  /** Users whose syncs must hear of this write besides the room's members: the targets of member events. */
  readonly touchedUsers = new Set<string>();
  readonly events: StoredEvent[] = [];

  constructor(
    readonly store: Store,
    readonly room: RoomRow,
    private readonly signer: EventSigner,
    private readonly clock: Clock,
    /** The room's cached head (checked against `room` by the caller), or its forward extremities as read. */
    known: RoomHead | { extremities: string[] },
    private readonly hooks: readonly EventHook[] = [],
  ) {
    this.depth = Number(room.depth);
    this.stateGroup = Number(room.state_group);
    this.lastPos = Number(room.last_pos);
    if ('extremities' in known) {
      this.baseState = new Map();
      this.extremity = known.extremities[0];
      this.singleExtremity = known.extremities.length <= 1;
    } else {
      this.baseState = known.state;
      this.extremity = known.extremity;
      this.singleExtremity = true;
      this.historyVisibility = known.historyVisibility;
      this.hops = known.hops;
    }
  }

  get roomId(): string {
    return this.room.room_id;
  }

  get version(): RoomVersionId {
    return this.room.room_version as RoomVersionId;
  }

  /** The room's state group as of the events appended so far (0 before its first state event). */
  get currentStateGroup(): number {
    return this.stateGroup;
  }

  private known(key: StateKey): StoredEvent | null | undefined {
    const event = this.stateCache.get(key);
    return event !== undefined ? event : this.baseState.get(key);
  }

  /** The room's current state event at (type, stateKey), as of the events appended so far. */
  async state(type: string, stateKey = ''): Promise<StoredEvent | undefined> {
    const key = stateKeyOf(type, stateKey);
    await this.loadState([key]);
    return this.known(key) ?? undefined;
  }

  /** The room's current state at these keys (those present), as of the events appended so far. */
  async stateOf(keys: readonly StateKey[]): Promise<Map<StateKey, StoredEvent>> {
    await this.loadState(keys);
    const state = new Map<StateKey, StoredEvent>();
    for (const key of keys) {
      const event = this.known(key);
      if (event) state.set(key, event);
    }
    return state;
  }

  private async loadState(keys: readonly StateKey[]): Promise<void> {
    const missing = keys.filter((k) => this.known(k) === undefined);
    if (missing.length === 0) return;
    const found = await currentStateEvents(this.store, this.roomId, missing);
    for (const key of missing) this.stateCache.set(key, found.get(key) ?? null);
  }

  /** Builds, authorises, signs and stores the next event. Throws M_FORBIDDEN (changing nothing) when the auth rules refuse it. */
  async append(sender: string, draft: EventDraft): Promise<StoredEvent> {
    const authState = await this.stateOf(authEventsSelection(draft.type, sender, draft.content, draft.state_key));
    const unsignedPdu: Pdu = {
      type: draft.type,
      room_id: this.roomId,
      sender,
      content: draft.content,
      ...(draft.state_key !== undefined ? { state_key: draft.state_key } : {}),
      origin_server_ts: this.clock.now(),
      depth: this.depth + 1,
      prev_events: this.extremity ? [this.extremity] : [],
      auth_events: [...authState.values()].map((e) => e.event_id),
      hashes: { sha256: '' },
      signatures: {},
    };
    if (draft.redacts !== undefined) {
      if (this.version === '10') unsignedPdu.redacts = draft.redacts;
      else unsignedPdu.content = { ...draft.content, redacts: draft.redacts };
    }
    try {
      authorize(unsignedPdu, authState, this.version);
    } catch (err: unknown) {
      if (err instanceof AuthError) throw forbidden(err.message);
      throw err;
    }
    const { pdu, eventId, json } = this.signer.finish(unsignedPdu, this.version);
    if (Buffer.byteLength(json) > MAX_PDU_BYTES) throw new MatrixError(413, 'M_TOO_LARGE', 'Event is too large');
    const event: StoredEvent = { ...pdu, event_id: eventId };
    // Before anything of the event is written: the hooks see the state it was sent in.
    const atPosition = await this.runHooks(event);

    if (this.historyVisibility === undefined) {
      const hv = await this.state('m.room.history_visibility');
      this.historyVisibility = typeof hv?.content.history_visibility === 'string' ? hv.content.history_visibility : DEFAULT_HISTORY_VISIBILITY;
    }
    const visibilityBefore = this.historyVisibility;

    // What does not need the stream position is written before it is taken: the room's lock already
    // keeps these rows to this writer, while from the position to the commit every writer of every
    // room waits (see StreamsRepo), a wait that on PostgreSQL grows with each round trip left.
    await this.writeChain();
    const chain: ChainLink = { eventId, prevEvents: pdu.prev_events, authEvents: pdu.auth_events, previous: this.singleExtremity ? this.extremity : undefined };
    // A message's link waits (see flush): written before anything else is, or with the commit.
    if (draft.state_key === undefined) this.chain = chain;
    else await this.store.events.extendChain(this.roomId, chain.eventId, chain.prevEvents, chain.authEvents, chain.previous);
    this.singleExtremity = true;
    this.extremity = eventId;
    this.depth = pdu.depth;
    this.events.push(event);
    if (draft.type === 'm.room.redaction' && draft.redacts !== undefined) await this.store.events.markRedacted(draft.redacts, eventId);
    await indexForSearch(this.store, event, draft.type === 'm.room.redaction' ? draft.redacts : undefined);
    const row = {
      event_id: eventId,
      room_id: this.roomId,
      depth: pdu.depth,
      type: pdu.type,
      sender,
      origin_server_ts: pdu.origin_server_ts,
      pdu: json,
      history_visibility: visibilityBefore,
    };
    if (draft.state_key === undefined) {
      // A message takes its position with the room's new head, in finish(): after whatever the
      // caller still writes under the room's lock (its transaction ID), as late as it can be.
      this.pending.push({ ...row, state_key: null, state_group: this.stateGroup, replaces_state: null, membership: null });
      this.pendingEvents.push({ event, redacts: draft.type === 'm.room.redaction' ? draft.redacts : undefined, atPosition });
      return event;
    }

    const previous = await this.state(draft.type, draft.state_key);
    const replaces = previous?.event_id ?? null;
    if (this.hops === undefined) this.hops = this.stateGroup === 0 ? 0 : ((await this.store.rooms.stateGroupHops(this.stateGroup)) ?? 0);
    await this.store.rooms.setCurrentState(this.roomId, draft.type, draft.state_key, eventId);
    await this.store.directory.onStateEvent(this.roomId, draft.type, draft.state_key, draft.content, previous?.content.membership as string | undefined);
    // Positions follow the order of the events: messages appended before this one take theirs first.
    await this.flush();
    const pos = await this.store.streams.advance();
    await this.newStateGroup(pos, draft.type, draft.state_key, eventId);
    this.stateCache.set(stateKeyOf(draft.type, draft.state_key), event);
    if (draft.type === 'm.room.history_visibility' && draft.state_key === '') {
      const value = draft.content.history_visibility;
      this.historyVisibility = typeof value === 'string' ? value : DEFAULT_HISTORY_VISIBILITY;
    }
    const membership = draft.type === 'm.room.member' && typeof draft.content.membership === 'string' ? draft.content.membership : null;
    await this.store.events.insert({ ...row, stream_pos: pos, state_key: draft.state_key, state_group: this.stateGroup, replaces_state: replaces, membership });
    await recordRelations(this.store, event, pos, undefined);
    for (const work of atPosition) await work.atPosition(pos);
    this.lastPos = pos;
    this.roomAdvanced = false;
    if (membership !== null) {
      const str = (v: unknown) => (typeof v === 'string' ? v : null);
      await this.store.rooms.setMember({
        room_id: this.roomId,
        user_id: draft.state_key,
        membership,
        event_id: eventId,
        stream_pos: pos,
        sender,
        displayname: str(draft.content.displayname),
        avatar_url: str(draft.content.avatar_url),
      });
      this.touchedUsers.add(draft.state_key);
      // Whoever leaves (or is kicked or banned) stops typing there, in the same sync as the leave.
      if (membership === 'leave' || membership === 'ban') await this.store.typing.stopAt(this.roomId, draft.state_key, pos);
    }
    return event;
  }

  private async runHooks(event: StoredEvent): Promise<PositionedWork[]> {
    const works: PositionedWork[] = [];
    for (const hook of this.hooks) {
      const work = await hook(this, event);
      if (work) works.push(work);
    }
    return works;
  }

  /**
   * Stores the messages appended since the last state event, each at the next stream position with
   * the room's head moved to it; the last with the client transaction it answers, when given.
   */
  /** Writes the last message's link in the room's chain, if still to be written. */
  private async writeChain(): Promise<void> {
    const chain = this.chain;
    this.chain = undefined;
    if (chain) await this.store.events.extendChain(this.roomId, chain.eventId, chain.prevEvents, chain.authEvents, chain.previous);
  }

  private async flush(txn?: TxnRecord, endsTransaction = false): Promise<void> {
    const rows = this.pending.splice(0);
    const events = this.pendingEvents.splice(0);
    for (const [i, row] of rows.entries()) {
      const last = i === rows.length - 1;
      if (last && endsTransaction && (await this.storeWithCommit(row, events[i]!, txn))) return;
      if (last) await this.writeChain();
      const { pos, recorded } = await this.store.events.insertAtNextPosition(row, last ? txn : undefined);
      if (!recorded) throw new TxnTaken();
      await recordRelations(this.store, events[i]!.event, pos, events[i]!.redacts);
      for (const work of events[i]!.atPosition) await work.atPosition(pos);
      this.lastPos = pos;
      this.roomAdvanced = true;
    }
  }

  /**
   * On PostgreSQL, the transaction's last statements (the message at its position with the room's
   * head, then what the hooks write at that position) go with its COMMIT, in one round trip
   * (Store.deferToCommit): from taking the stream position to committing, no turn of this process's
   * event loop is waited for, while every writer of every room waits for that position (see
   * StreamsRepo). False, having written nothing, where that cannot be: SQLite, a savepoint, a relation
   * (its checks read), or a hook without a statement.
   */
  private async storeWithCommit(row: Omit<NewEventRow, 'stream_pos'>, pending: (typeof this.pendingEvents)[number], txn: TxnRecord | undefined): Promise<boolean> {
    if (!this.store.canDeferToCommit || pending.redacts !== undefined || relationOf(pending.event.content) !== undefined) return false;
    const trailing: CompiledQuery[] = [];
    for (const work of pending.atPosition) {
      if (!work.atTakenPosition) return false;
      trailing.push(work.atTakenPosition());
    }
    const chain = this.chain;
    this.chain = undefined;
    if (chain) this.store.deferToCommit(this.store.events.extendChainStatement(this.roomId, chain.eventId, chain.prevEvents, chain.authEvents, chain.previous));
    const { rows } = this.store.deferToCommit<{ position: number | string }>(this.store.events.appendStatement(row, txn));
    for (const statement of trailing) this.store.deferToCommit(statement);
    this.withCommit = { row, rows };
    this.roomAdvanced = true;
    return true;
  }

  /** Once the transaction committed: the position of a message stored with the commit. */
  async committed(): Promise<void> {
    if (!this.withCommit) return;
    const { row, rows } = this.withCommit;
    this.withCommit = undefined;
    const pos = Number((await rows)[0]!.position);
    this.store.events.appended(row, pos);
    this.lastPos = pos;
  }

  /**
   * Records that the write's last event answers this client transaction, with the event at finish.
   * Should the transaction ID already have an event (a retry racing the original), the write fails
   * with TxnTaken and is rolled back.
   */
  recordTxn(txn: TxnRecord): void {
    this.txn = txn;
  }

  /** After setCurrentState: a full copy reads the current state, this event already in it. */
  private async newStateGroup(id: number, type: string, stateKey: string, eventId: string): Promise<void> {
    const previous = this.stateGroup;
    this.hops ??= 0;
    if (previous === 0 || this.hops + 1 >= MAX_STATE_HOPS) {
      // A full copy: the current state with this event in it.
      const current = previous === 0 ? [] : await this.store.rooms.currentStateIds(this.roomId);
      const entries = current.filter((e) => !(e.type === type && e.state_key === stateKey));
      entries.push({ type, state_key: stateKey, event_id: eventId });
      await this.store.rooms.addStateGroup(id, this.roomId, null, 0, entries);
      this.hops = 0;
    } else {
      await this.store.rooms.addStateGroup(id, this.roomId, previous, this.hops + 1, [{ type, state_key: stateKey, event_id: eventId }]);
      this.hops += 1;
    }
    this.stateGroup = id;
  }

  /** Stores what is still pending and writes the room's new head (depth, latest position, state). */
  async finish(): Promise<void> {
    if (this.events.length === 0) return;
    const txn = this.txn;
    this.txn = undefined;
    if (txn && this.pending.length === 0 && !(await this.store.events.recordTxn(txn.userId, txn.deviceId, txn.txnKey, this.events.at(-1)!.event_id, txn.now))) throw new TxnTaken();
    await this.flush(txn, true);
    if (!this.roomAdvanced) await this.store.rooms.advance(this.roomId, { depth: this.depth, lastPos: this.lastPos, stateGroup: this.stateGroup });
    this.roomAdvanced = true;
  }

  get position(): number {
    return this.lastPos;
  }

  /** What this write leaves the room as, once committed and finished; undefined when it may have more than one forward extremity. */
  head(): RoomHead | undefined {
    if (!this.singleExtremity || this.pending.length > 0 || !this.roomAdvanced) return undefined;
    let state = this.baseState;
    if (this.stateCache.size > 0) {
      const merged = new Map(this.baseState);
      for (const [key, event] of this.stateCache) merged.set(key, event);
      state = merged;
    }
    return { depth: this.depth, stateGroup: this.stateGroup, lastPos: this.lastPos, extremity: this.extremity, state, historyVisibility: this.historyVisibility, hops: this.hops };
  }
}

/** Writes events into rooms, one room at a time in one transaction each, and wakes the syncs concerned once committed. */
export class EventCreator {
  private readonly gate: WriteGate;
  /** Work that follows every committed room write (push delivery); it must not wait on the writer. */
  readonly afterPersist: ((roomId: string, position: number) => void)[] = [];
  /** Work on each event inside its write (push evaluation). */
  readonly eventHooks: EventHook[] = [];
  private readonly heads = new RoomHeadCache();
  /** Writes of existing rooms by where their head came from: this process's cache, or the database. */
  readonly headReads = { cached: 0, database: 0 };
  /** Per room, this process's write whose COMMIT is under way, until its head is kept (see run). */
  private readonly settling = new Map<string, Promise<void>>();

  constructor(
    private readonly store: Store,
    private readonly notifier: Notifier,
    private readonly signer: EventSigner,
    private readonly clock: Clock,
    /** How many room writes this process runs at once (each holds a database connection throughout), and how many of one room. */
    concurrentWrites: { all: number; perRoom?: number } = { all: 5 },
  ) {
    this.gate = new WriteGate(concurrentWrites.all, concurrentWrites.perRoom);
  }

  /**
   * Runs `fn` with the room locked. An unknown room is M_NOT_FOUND for a join, and for anything else
   * M_FORBIDDEN, the same answer as a room the user is not in. `beforeLock` runs first, in the same
   * transaction.
   */
  write<T>(roomId: string, fn: (room: RoomWrite) => Promise<T>, unknownRoom: 'not-found' | 'forbidden' = 'forbidden', beforeLock?: (store: Store) => Promise<void>): Promise<T> {
    return this.gate.run(roomId, () =>
      this.run(async (store) => {
        // In the same transaction (one commit for both) but before the room is locked, so that on
        // PostgreSQL its round trip does not add to the time every other writer of the room waits.
        if (beforeLock) await beforeLock(store);
        const room = await store.rooms.lock(roomId);
        if (!room) throw unknownRoom === 'not-found' ? notFound('Unknown room') : forbidden('You are not in this room');
        return room;
      }, fn),
    );
  }

  /** Creates the room's row, then runs `fn` to write its first events. */
  create<T>(room: { roomId: string; version: RoomVersionId; creator: string }, fn: (room: RoomWrite) => Promise<T>): Promise<T> {
    return this.gate.run(room.roomId, () =>
      this.run(async (store) => {
        await store.rooms.create({ room_id: room.roomId, room_version: room.version, creator: room.creator, created_ts: this.clock.now() });
        return (await store.rooms.get(room.roomId))!;
      }, fn),
    );
  }

  private async run<T>(open: (store: Store) => Promise<RoomRow>, fn: (room: RoomWrite) => Promise<T>): Promise<T> {
    let write: RoomWrite | undefined;
    let kept: Promise<void> | undefined;
    let settled!: () => void;
    const settle = new Promise<void>((resolve) => (settled = resolve));
    let result: T;
    try {
      result = await this.store.transaction(async (store) => {
        const row = await open(store);
        // A write of this room by this process that held the lock before this one has had its COMMIT
        // returned, but its own continuation may not have run yet: its head first, or this write
        // would read the room's state and forward extremity from the database.
        await this.settling.get(row.room_id);
        const head = this.heads.get(row);
        if (head) this.headReads.cached += 1;
        else if (Number(row.depth) > 0) this.headReads.database += 1;
        const current = new RoomWrite(store, row, this.signer, this.clock, head ?? { extremities: await store.events.forwardExtremities(row.room_id) }, this.eventHooks);
        write = current;
        const value = await fn(current);
        await current.finish();
        this.settling.set(current.roomId, settle);
        store.onCommitReturned(() => {
          kept = this.keepHead(current);
          void kept.catch(() => undefined).finally(settled);
        });
        return value;
      });
      await kept;
    } catch (err) {
      // Kept as the COMMIT returned, but the transaction still failed (SQLite: its group's commit).
      if (kept) this.heads.delete(write!.roomId);
      // A message stored with the commit, its transaction ID taken meanwhile (see EventsRepo.appendStatement).
      if (isTxnConflict(err)) throw new TxnTaken();
      throw err;
    } finally {
      if (write && this.settling.get(write.roomId) === settle) this.settling.delete(write.roomId);
      settled();
    }
    if (write!.events.length > 0) {
      this.notifier.notify({ position: write!.position, rooms: [write!.roomId], users: write!.touchedUsers });
      for (const hook of this.afterPersist) hook(write!.roomId, write!.position);
    }
    return result;
  }

  /**
   * Keeps the head a write leaves, once its COMMIT returned: never before, as a head kept before
   * would be wrong after a rollback. (A write that fails earlier leaves the room's earlier head,
   * still checked against the room's row at every use.)
   */
  private async keepHead(write: RoomWrite): Promise<void> {
    await write.committed();
    const head = write.head();
    if (head) this.heads.set(write.roomId, head);
    else this.heads.delete(write.roomId);
  }
}

/**
 * Room writes wait here, in this process, before they take a database connection: at most
 * `perRoom` of one room at once (in arrival order), and at most `limit` in all. Without it, on
 * PostgreSQL, writers of a busy room each hold a pooled connection while they wait for the room's
 * row lock (and writers of all rooms for the stream position's), until the pool is theirs and every
 * other request (/sync, token checks) queues behind them. Two per room, so that the next writer
 * already waits at the row lock when the current one commits. The database's locks still order
 * writers, across processes too. A room write must not start another inside itself: it could wait
 * for a slot its caller holds.
 */
export class WriteGate {
  private readonly rooms = new Map<string, { active: number; queue: (() => void)[] }>();
  private readonly all = { active: 0, queue: [] as (() => void)[] };

  constructor(
    private readonly limit: number,
    private readonly perRoom = 2,
  ) {}

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    let room = this.rooms.get(key);
    if (!room) this.rooms.set(key, (room = { active: 0, queue: [] }));
    await acquire(room, this.perRoom);
    try {
      await acquire(this.all, this.limit);
      try {
        return await fn();
      } finally {
        release(this.all);
      }
    } finally {
      release(room);
      if (room.active === 0) this.rooms.delete(key);
    }
  }
}

async function acquire(slots: { active: number; queue: (() => void)[] }, limit: number): Promise<void> {
  if (slots.active < limit) slots.active += 1;
  else await new Promise<void>((resolve) => slots.queue.push(resolve));
}

/** Hands the slot to the next in line, if any. */
function release(slots: { active: number; queue: (() => void)[] }): void {
  const next = slots.queue.shift();
  if (next) next();
  else slots.active -= 1;
}
