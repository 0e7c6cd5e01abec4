import type { Clock } from '../../clock.js';
import { forbidden, MatrixError, notFound } from '../../errors.js';
import type { EventRow } from '../../storage/events.js';
import type { Store } from '../../storage/index.js';
import { MAX_STATE_HOPS, type RoomRow } from '../../storage/rooms.js';
import type { JsonObject } from '../../validate.js';
import type { Notifier } from '../sync/notifier.js';
import { AuthError, authEventsSelection, authorize } from './auth-rules.js';
import type { EventSigner } from './event-signer.js';
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
 * One room's events being written in one transaction, with the room's row locked: each `append`
 * builds the next event on the room's single forward extremity, authorises it against the current
 * state, hashes and signs it, and stores it with the state after it.
 */
export class RoomWrite {
  private readonly stateCache = new Map<StateKey, StoredEvent | null>();
  private depth: number;
  private stateGroup: number;
  private hops: number | undefined;
  private lastPos: number;
  private extremity: string | undefined;
  private historyVisibility: string | undefined;
  /** Users whose syncs must hear of this write besides the room's members: the targets of member events. */
  readonly touchedUsers = new Set<string>();
  readonly events: StoredEvent[] = [];

  constructor(
    readonly store: Store,
    readonly room: RoomRow,
    private readonly signer: EventSigner,
    private readonly clock: Clock,
    extremities: string[],
  ) {
    this.depth = Number(room.depth);
    this.stateGroup = Number(room.state_group);
    this.lastPos = Number(room.last_pos);
    this.extremity = extremities[0];
  }

  get roomId(): string {
    return this.room.room_id;
  }

  get version(): RoomVersionId {
    return this.room.room_version as RoomVersionId;
  }

  /** The room's current state event at (type, stateKey), as of the events appended so far. */
  async state(type: string, stateKey = ''): Promise<StoredEvent | undefined> {
    await this.loadState([stateKeyOf(type, stateKey)]);
    return this.stateCache.get(stateKeyOf(type, stateKey)) ?? undefined;
  }

  /** The room's current state at these keys (those present), as of the events appended so far. */
  async stateOf(keys: readonly StateKey[]): Promise<Map<StateKey, StoredEvent>> {
    await this.loadState(keys);
    const state = new Map<StateKey, StoredEvent>();
    for (const key of keys) {
      const event = this.stateCache.get(key);
      if (event) state.set(key, event);
    }
    return state;
  }

  private async loadState(keys: readonly StateKey[]): Promise<void> {
    const missing = keys.filter((k) => !this.stateCache.has(k));
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

    if (this.historyVisibility === undefined) {
      const hv = await this.state('m.room.history_visibility');
      this.historyVisibility = typeof hv?.content.history_visibility === 'string' ? hv.content.history_visibility : DEFAULT_HISTORY_VISIBILITY;
    }
    const visibilityBefore = this.historyVisibility;

    // What does not need the stream position is written before it is taken: the room's lock already
    // keeps these rows to this writer, while from the position to the commit every writer of every
    // room waits (see StreamsRepo), a wait that on PostgreSQL grows with each round trip left.
    await this.store.events.insertEdges(eventId, pdu.prev_events, pdu.auth_events);
    await this.store.events.setForwardExtremity(this.roomId, eventId);
    if (draft.type === 'm.room.redaction' && draft.redacts !== undefined) await this.store.events.markRedacted(draft.redacts, eventId);
    let replaces: string | null = null;
    if (draft.state_key !== undefined) {
      const previous = await this.state(draft.type, draft.state_key);
      replaces = previous?.event_id ?? null;
      if (this.hops === undefined) this.hops = this.stateGroup === 0 ? 0 : ((await this.store.rooms.stateGroupHops(this.stateGroup)) ?? 0);
      await this.store.rooms.setCurrentState(this.roomId, draft.type, draft.state_key, eventId);
      await this.store.directory.onStateEvent(this.roomId, draft.type, draft.state_key, draft.content, previous?.content.membership as string | undefined);
    }

    const pos = await this.store.streams.advance();
    if (draft.state_key !== undefined) {
      const key = stateKeyOf(draft.type, draft.state_key);
      await this.newStateGroup(pos, draft.type, draft.state_key, eventId);
      this.stateCache.set(key, event);
      if (draft.type === 'm.room.history_visibility' && draft.state_key === '') {
        const value = draft.content.history_visibility;
        this.historyVisibility = typeof value === 'string' ? value : DEFAULT_HISTORY_VISIBILITY;
      }
    }
    const membership = draft.type === 'm.room.member' && typeof draft.content.membership === 'string' ? draft.content.membership : null;
    await this.store.events.insert(
      {
        event_id: eventId,
        room_id: this.roomId,
        stream_pos: pos,
        depth: pdu.depth,
        type: pdu.type,
        state_key: pdu.state_key ?? null,
        sender,
        origin_server_ts: pdu.origin_server_ts,
        pdu: json,
        state_group: this.stateGroup,
        replaces_state: replaces,
        membership,
        history_visibility: visibilityBefore,
      },
    );
    if (membership !== null && draft.state_key !== undefined) {
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
    }
    this.depth = pdu.depth;
    this.lastPos = pos;
    this.extremity = eventId;
    this.events.push(event);
    return event;
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

  /** Writes the room's new head (depth, latest position, state); each append has set the forward extremity. */
  async finish(): Promise<void> {
    if (this.events.length === 0) return;
    await this.store.rooms.advance(this.roomId, { depth: this.depth, lastPos: this.lastPos, stateGroup: this.stateGroup });
  }

  get position(): number {
    return this.lastPos;
  }
}

/** Writes events into rooms, one room at a time in one transaction each, and wakes the syncs concerned once committed. */
export class EventCreator {
  private readonly gate: WriteGate;

  constructor(
    private readonly store: Store,
    private readonly notifier: Notifier,
    private readonly signer: EventSigner,
    private readonly clock: Clock,
    /** How many room writes this process runs at once (each holds a database connection throughout). */
    concurrentWrites = 5,
  ) {
    this.gate = new WriteGate(concurrentWrites);
  }

  /**
   * Runs `fn` with the room locked. An unknown room is M_NOT_FOUND for a join, and for anything else
   * M_FORBIDDEN, the same answer as a room the user is not in.
   */
  write<T>(roomId: string, fn: (room: RoomWrite) => Promise<T>, unknownRoom: 'not-found' | 'forbidden' = 'forbidden'): Promise<T> {
    return this.gate.run(roomId, () =>
      this.run(async (store) => {
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
    const result = await this.store.transaction(async (store) => {
      const row = await open(store);
      write = new RoomWrite(store, row, this.signer, this.clock, await store.events.forwardExtremities(row.room_id));
      const value = await fn(write);
      await write.finish();
      return value;
    });
    if (write && write.events.length > 0) this.notifier.notify({ position: write.position, rooms: [write.roomId], users: write.touchedUsers });
    return result;
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
