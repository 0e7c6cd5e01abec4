import { sql, type Kysely, type Selectable } from 'kysely';
import { anyOf } from './any-of.js';
import { HotQuery, RawHotQuery } from './compiled.js';
import type { Db, Engine } from './db.js';
import { eventCacheOf, MUTABLE_EVENT_COLUMNS, type EventCache, type EventKey, type FixedEventColumns } from './event-cache.js';
import type { EventsTable } from './rooms-schema.js';
import type { Database } from './schema.js';
import { advanceStream } from './streams.js';

export type EventRow = Selectable<EventsTable>;

/** A stored event as the room layer writes it. */
export type NewEventRow = Omit<EventsTable, 'redacted_by' | 'outlier' | 'soft_failed' | 'rejection_reason' | 'sender_erased'>;

/** A client's transaction ID, as a device's send recorded it (see txnKeyOf). */
export interface TxnRecord {
  userId: string;
  deviceId: string;
  txnKey: string;
  now: number;
}

/** Rows per IN (...) list: well under SQLite's limit on bound variables. */
const CHUNK = 500;

/**
 * Events of every room: the PDUs, their DAG edges, and the timeline orders sync and /messages read.
 * Reads go through the process's EventCache: an event it holds is read as its ID and changing
 * columns only (see event-cache.ts), the others whole, and kept.
 */
export class EventsRepo {
  private readonly cache: EventCache;
  private readonly engine: Engine;

  /** `owner`: the database `db` works on (a transaction of it, or itself), whose event cache this uses. */
  constructor(
    private readonly db: Kysely<Database>,
    owner: Db,
  ) {
    this.cache = eventCacheOf(owner);
    this.engine = owner.engine;
  }

  /** The event's row; its DAG edges (prev and auth events) with insertEdges, or here. */
  async insert(row: NewEventRow, prevEvents: readonly string[] = [], authEvents: readonly string[] = []): Promise<void> {
    await this.db.insertInto('events').values({ ...row, outlier: 0, soft_failed: 0 }).execute();
    // New events are what syncs read next. Served only once a read finds the row committed.
    this.cache.put(row);
    await this.insertEdges(row.event_id, prevEvents, authEvents);
  }

  /**
   * A new event of a room's single chain: its DAG edges, and the room's forward extremity moved from
   * `previous` (the one extremity the writer read under the room's lock; undefined for the room's
   * first event) to it. One statement on PostgreSQL.
   */
  async extendChain(roomId: string, eventId: string, prevEvents: readonly string[], authEvents: readonly string[], previous: string | undefined): Promise<void> {
    if (previous !== undefined) {
      let moved: boolean;
      if (this.engine === 'postgres') {
        moved = (await EXTEND_CHAIN_PG.execute(this.db, [eventId, prevEvents, authEvents, roomId, previous])).rows.length === 1;
      } else {
        await this.insertEdges(eventId, prevEvents, authEvents);
        moved = Number((await MOVE_EXTREMITY.execute(this.db, eventId, roomId, previous)).numAffectedRows ?? 0) === 1;
      }
      if (moved) return;
      // The room had other extremities than the one read: they are all replaced.
    } else {
      await this.insertEdges(eventId, prevEvents, authEvents);
    }
    await this.setForwardExtremity(roomId, eventId);
  }

  /**
   * extendChain as one statement for Store.deferToCommit (PostgreSQL): the forward extremity moved
   * from `previous`, or, where the room had none such, all its extremities replaced.
   */
  extendChainStatement(roomId: string, eventId: string, prevEvents: readonly string[], authEvents: readonly string[], previous: string | undefined): { sql: string; parameters: unknown[] } {
    return { sql: EXTEND_CHAIN_AT_COMMIT_PG, parameters: [eventId, JSON.stringify(prevEvents), JSON.stringify(authEvents), roomId, previous ?? null] };
  }

  /**
   * Stores a room's next event at the next global stream position, and moves the room's head to it
   * (depth, latest position, state group): what a message needs once its other rows are written.
   * With `txn`, also records the client transaction the event answers, unless that transaction
   * already has an event: then nothing is stored and `recorded` is false (the caller rolls back).
   * On PostgreSQL one statement, so the stream position's row lock (see StreamsRepo) is held for
   * that round trip and the commit only.
   */
  async insertAtNextPosition(row: Omit<NewEventRow, 'stream_pos'>, txn?: TxnRecord): Promise<{ pos: number; recorded: boolean }> {
    let pos: number;
    if (this.engine === 'postgres') {
      const event = [row.event_id, row.room_id, row.depth, row.type, row.state_key, row.sender, row.origin_server_ts, row.pdu, row.state_group, row.replaces_state, row.membership, row.history_visibility];
      if (txn) {
        const result = await APPEND_EVENT_WITH_TXN_PG.execute(this.db, [...event, txn.userId, txn.deviceId, txn.txnKey, txn.now]);
        if (Number(result.rows[0]!.recorded) !== 1) return { pos: 0, recorded: false };
        pos = Number(result.rows[0]!.position);
      } else {
        pos = Number((await APPEND_EVENT_PG.execute(this.db, event)).rows[0]!.position);
      }
    } else {
      if (txn && !(await this.recordTxn(txn.userId, txn.deviceId, txn.txnKey, row.event_id, txn.now))) return { pos: 0, recorded: false };
      pos = await advanceStream(this.db);
      await INSERT_EVENT.execute(this.db, row.event_id, row.room_id, pos, row.depth, row.type, row.state_key, row.sender, row.origin_server_ts, row.pdu, row.state_group, row.replaces_state, row.membership, row.history_visibility);
      await ADVANCE_ROOM.execute(this.db, row.depth, pos, row.state_group, row.room_id);
    }
    this.cache.put({ ...row, stream_pos: pos });
    return { pos, recorded: true };
  }

  /**
   * insertAtNextPosition's statement, to send with the commit (Store.deferToCommit; PostgreSQL).
   * There a transaction ID that already has an event fails the statement (a unique violation on
   * event_txns, see isTxnConflict) and so the commit. Call appended() with its position once committed.
   */
  appendStatement(row: Omit<NewEventRow, 'stream_pos'>, txn?: TxnRecord): { sql: string; parameters: unknown[] } {
    const event = [row.event_id, row.room_id, row.depth, row.type, row.state_key, row.sender, row.origin_server_ts, row.pdu, row.state_group, row.replaces_state, row.membership, row.history_visibility];
    if (!txn) return { sql: APPEND_EVENT_PG_TEXT, parameters: event };
    return { sql: APPEND_EVENT_WITH_TXN_AT_COMMIT_PG, parameters: [...event, txn.userId, txn.deviceId, txn.txnKey, txn.now] };
  }

  /** After appendStatement's commit, at `pos`: what insertAtNextPosition keeps of the event. */
  appended(row: Omit<NewEventRow, 'stream_pos'>, pos: number): void {
    this.cache.put({ ...row, stream_pos: pos });
  }

  async insertEdges(eventId: string, prevEvents: readonly string[], authEvents: readonly string[]): Promise<void> {
    if (prevEvents.length > 0) await this.db.insertInto('event_edges').values(prevEvents.map((prev) => ({ event_id: eventId, prev_event_id: prev }))).execute();
    if (authEvents.length > 0) await this.db.insertInto('event_auth').values(authEvents.map((auth) => ({ event_id: eventId, auth_id: auth }))).execute();
  }

  async get(eventId: string): Promise<EventRow | undefined> {
    return (await this.getMany([eventId]))[0];
  }

  /** The events with these IDs (those that exist), in no particular order. */
  async getMany(eventIds: readonly string[]): Promise<EventRow[]> {
    const unique = [...new Set(eventIds)];
    const cached: string[] = [];
    const uncached: string[] = [];
    for (const id of unique) (this.cache.has(id) ? cached : uncached).push(id);
    const keys: EventKey[] = [];
    const chunk = this.chunk;
    for (let i = 0; i < cached.length; i += chunk) {
      keys.push(...(await this.db.selectFrom('events').select(['event_id', ...MUTABLE_EVENT_COLUMNS]).where(anyOf(this.engine, 'event_id', cached.slice(i, i + chunk))).execute()));
    }
    const rows = keys.length > 0 ? await this.complete(keys) : [];
    rows.push(...(await this.whole(uncached)));
    return rows;
  }

  /** IDs per statement: PostgreSQL takes them as one array parameter, so many more at once. */
  private get chunk(): number {
    return this.engine === 'postgres' ? 5000 : CHUNK;
  }

  /** The PDU of a row, parsed; from the cache when it holds the event. Shared and frozen: never change it. */
  parsed(row: Pick<EventRow, 'event_id' | 'pdu'>): unknown {
    return this.cache.parsed(row);
  }

  /**
   * The rows of events read as keys (ID and changing columns), in the same order: the unchanging
   * columns from the cache, the events it lacks read whole (one statement per 500, per 5,000 on
   * PostgreSQL). An event gone since its key was read is left out.
   */
  async complete(keys: readonly EventKey[]): Promise<EventRow[]> {
    const rows: (EventRow | undefined)[] = [];
    const missing: string[] = [];
    for (const key of keys) {
      const fixed = this.cache.fixed(key.event_id);
      if (fixed) rows.push(rowOf(fixed, key));
      else {
        rows.push(undefined);
        missing.push(key.event_id);
      }
    }
    if (missing.length === 0) return rows as EventRow[];
    const read = new Map((await this.whole(missing)).map((r) => [r.event_id, r]));
    const out: EventRow[] = [];
    for (const [i, key] of keys.entries()) {
      const row = rows[i] ?? read.get(key.event_id);
      if (row) out.push(row);
    }
    return out;
  }

  /**
   * The events of a room's current state (only those of `type` when given), in no particular order:
   * one statement for the keys, the rows from the cache.
   */
  async currentState(roomId: string, type?: string): Promise<EventRow[]> {
    let query = this.db
      .selectFrom('current_state as cs')
      .innerJoin('events as e', 'e.event_id', 'cs.event_id')
      .select(['e.event_id', 'e.redacted_by', 'e.outlier', 'e.soft_failed', 'e.rejection_reason', 'e.sender_erased'])
      .where('cs.room_id', '=', roomId);
    if (type !== undefined) query = query.where('cs.type', '=', type);
    return this.complete(await query.execute());
  }

  /** Whole rows, read and kept in the cache. */
  private async whole(eventIds: readonly string[]): Promise<EventRow[]> {
    const rows: EventRow[] = [];
    const chunk = this.chunk;
    for (let i = 0; i < eventIds.length; i += chunk) {
      const read = await this.db.selectFrom('events').selectAll().where(anyOf(this.engine, 'event_id', eventIds.slice(i, i + chunk))).execute();
      for (const row of read) this.cache.put(row);
      rows.push(...read);
    }
    return rows;
  }

  async markRedacted(eventId: string, redactionId: string): Promise<void> {
    await this.db.updateTable('events').set({ redacted_by: redactionId }).where('event_id', '=', eventId).where('redacted_by', 'is', null).execute();
    // Reads take redacted_by from the database anyway; the content need not stay in memory.
    this.cache.delete(eventId);
  }

  /**
   * A room's events in stream order within (after, upto], newest first, at most `limit`: the end of
   * a sync timeline.
   */
  async latest(roomId: string, after: number, upto: number, limit: number): Promise<EventRow[]> {
    const keys = await this.db
      .selectFrom('events')
      .select(['event_id', ...MUTABLE_EVENT_COLUMNS])
      .where('room_id', '=', roomId)
      .where('stream_pos', '>', after)
      .where('stream_pos', '<=', upto)
      .orderBy('stream_pos', 'desc')
      .limit(limit)
      .execute();
    return this.complete(keys);
  }

  /**
   * The events of these rooms in stream order within (after, upto], oldest first, at most `limit`:
   * the old event stream (GET /events), which runs across rooms.
   */
  async streamSlice(roomIds: readonly string[], after: number, upto: number, limit: number): Promise<EventRow[]> {
    if (roomIds.length === 0) return [];
    const keys = await this.db
      .selectFrom('events')
      .select(['event_id', ...MUTABLE_EVENT_COLUMNS])
      .where(anyOf(this.engine, 'room_id', roomIds))
      .where('stream_pos', '>', after)
      .where('stream_pos', '<=', upto)
      .orderBy('stream_pos', 'asc')
      .limit(limit)
      .execute();
    return this.complete(keys);
  }

  /**
   * A page of a room's history in topological order from a point (depth, stream position), going
   * backwards (events before it, newest first) or forwards (after it, oldest first).
   */
  async page(roomId: string, from: { depth: number; pos: number }, dir: 'b' | 'f', limit: number, to?: { depth: number; pos: number }): Promise<EventRow[]> {
    // Row values, not `depth < d OR (depth = d AND ...)`: both engines then seek the (room_id, depth,
    // stream_pos) index to the point, where the OR made SQLite walk the room from its newest event.
    let query = this.db.selectFrom('events').select(['event_id', ...MUTABLE_EVENT_COLUMNS]).where('room_id', '=', roomId);
    if (dir === 'b') {
      query = query.where(sql<boolean>`(depth, stream_pos) <= (${from.depth}, ${from.pos})`);
      if (to) query = query.where(sql<boolean>`(depth, stream_pos) > (${to.depth}, ${to.pos})`);
      query = query.orderBy('depth', 'desc').orderBy('stream_pos', 'desc');
    } else {
      query = query.where(sql<boolean>`(depth, stream_pos) > (${from.depth}, ${from.pos})`);
      if (to) query = query.where(sql<boolean>`(depth, stream_pos) <= (${to.depth}, ${to.pos})`);
      query = query.orderBy('depth', 'asc').orderBy('stream_pos', 'asc');
    }
    return this.complete(await query.limit(limit).execute());
  }

  /** The (depth, position) of a room's latest event at or before stream position `pos`; undefined before the room began. */
  async pointAt(roomId: string, pos: number): Promise<{ depth: number; pos: number } | undefined> {
    const row = await this.db
      .selectFrom('events')
      .select(['depth', 'stream_pos'])
      .where('room_id', '=', roomId)
      .where('stream_pos', '<=', pos)
      .orderBy('stream_pos', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? { depth: Number(row.depth), pos: Number(row.stream_pos) } : undefined;
  }

  /** A user's member events in a room, oldest first: what their membership was at any point. */
  membershipHistory(roomId: string, userId: string): Promise<Pick<EventRow, 'stream_pos' | 'membership'>[]> {
    return this.db
      .selectFrom('events')
      .select(['stream_pos', 'membership'])
      .where('room_id', '=', roomId)
      // A literal, not a parameter: so SQLite can use the partial index on member events.
      .where(sql<boolean>`type = 'm.room.member'`)
      .where('state_key', '=', userId)
      .orderBy('stream_pos')
      .execute();
  }

  /** membershipHistory for several rooms in one statement, by room (rooms without any are absent). */
  async membershipHistories(roomIds: readonly string[], userId: string): Promise<Map<string, Pick<EventRow, 'stream_pos' | 'membership'>[]>> {
    const out = new Map<string, Pick<EventRow, 'stream_pos' | 'membership'>[]>();
    if (roomIds.length === 0) return out;
    const rows = await this.db
      .selectFrom('events')
      .select(['room_id', 'stream_pos', 'membership'])
      .where(anyOf(this.engine, 'room_id', roomIds))
      .where(sql<boolean>`type = 'm.room.member'`)
      .where('state_key', '=', userId)
      .orderBy('stream_pos')
      .execute();
    for (const { room_id, ...change } of rows) {
      const list = out.get(room_id);
      if (list) list.push(change);
      else out.set(room_id, [change]);
    }
    return out;
  }

  async forwardExtremities(roomId: string): Promise<string[]> {
    const rows = await this.db.selectFrom('forward_extremities').select('event_id').where('room_id', '=', roomId).execute();
    return rows.map((r) => r.event_id);
  }

  /** The room's forward extremities become `eventId` alone (events are created one at a time per room). */
  async setForwardExtremity(roomId: string, eventId: string): Promise<void> {
    await this.db.deleteFrom('forward_extremities').where('room_id', '=', roomId).execute();
    await this.db.insertInto('forward_extremities').values({ room_id: roomId, event_id: eventId }).execute();
  }

  /** The event a device's earlier transaction produced. */
  async txnEvent(userId: string, deviceId: string, txnKey: string): Promise<string | undefined> {
    return (await TXN_EVENT.execute(this.db, userId, deviceId, txnKey)).rows[0]?.event_id;
  }

  /** False (recording nothing) when the device's transaction already has an event. */
  async recordTxn(userId: string, deviceId: string, txnKey: string, eventId: string, now: number): Promise<boolean> {
    return Number((await RECORD_TXN.execute(this.db, userId, deviceId, txnKey, eventId, now)).numAffectedRows ?? 0) === 1;
  }

  /** Which of these events a device sent, with the transaction ID it sent them under. */
  async txnIdsOf(userId: string, deviceId: string, eventIds: readonly string[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    if (eventIds.length === 0) return found;
    const rows = await this.db
      .selectFrom('event_txns')
      .select(['event_id', 'txn_key'])
      .where('user_id', '=', userId)
      .where('device_id', '=', deviceId)
      .where(anyOf(this.engine, 'event_id', [...new Set(eventIds)].slice(0, CHUNK)))
      .execute();
    for (const row of rows) found.set(row.event_id, txnIdOfKey(row.txn_key));
    return found;
  }
}

const TXN_EVENT = new HotQuery((db: Kysely<Database>, userId: string, deviceId: string, txnKey: string) =>
  db.selectFrom('event_txns').select('event_id').where('user_id', '=', userId).where('device_id', '=', deviceId).where('txn_key', '=', txnKey),
);

const RECORD_TXN = new HotQuery((db: Kysely<Database>, userId: string, deviceId: string, txnKey: string, eventId: string, now: number) =>
  db
    .insertInto('event_txns')
    .values({ user_id: userId, device_id: deviceId, txn_key: txnKey, event_id: eventId, created_ts: now })
    .onConflict((oc) => oc.columns(['user_id', 'device_id', 'txn_key']).doNothing()),
);

const MOVE_EXTREMITY = new HotQuery((db: Kysely<Database>, eventId: string, roomId: string, previous: string) =>
  db.updateTable('forward_extremities').set({ event_id: eventId }).where('room_id', '=', roomId).where('event_id', '=', previous),
);


const INSERT_EVENT = new HotQuery(
  (
    db: Kysely<Database>,
    event_id: string,
    room_id: string,
    stream_pos: number,
    depth: number,
    type: string,
    state_key: string | null,
    sender: string,
    origin_server_ts: number,
    pdu: string,
    state_group: number,
    replaces_state: string | null,
    membership: string | null,
    history_visibility: string,
  ) =>
    db.insertInto('events').values({
      event_id,
      room_id,
      stream_pos,
      depth,
      type,
      state_key,
      sender,
      origin_server_ts,
      pdu,
      state_group,
      replaces_state,
      membership,
      history_visibility,
      outlier: 0,
      soft_failed: 0,
    }),
);

const ADVANCE_ROOM = new HotQuery((db: Kysely<Database>, depth: number, lastPos: number, stateGroup: number, roomId: string) =>
  db.updateTable('rooms').set({ depth, last_pos: lastPos, state_group: stateGroup }).where('room_id', '=', roomId),
);

/** The DAG edges and the forward extremity's move, in one round trip (see extendChain). */
const EXTEND_CHAIN_PG = new RawHotQuery<{ moved: number }>(
  `WITH prev AS (INSERT INTO event_edges (event_id, prev_event_id) SELECT $1::text, unnest($2::text[])),
  auth AS (INSERT INTO event_auth (event_id, auth_id) SELECT $1::text, unnest($3::text[]))
  UPDATE forward_extremities SET event_id = $1::text WHERE room_id = $4::text AND event_id = $5::text RETURNING 1 AS moved`,
);

/** extendChainStatement's: the edges go as JSON arrays, a statement sent with the commit taking no array parameter. */
const EXTEND_CHAIN_AT_COMMIT_PG = `WITH prev AS (INSERT INTO event_edges (event_id, prev_event_id) SELECT $1::text, json_array_elements_text($2::json)),
  auth AS (INSERT INTO event_auth (event_id, auth_id) SELECT $1::text, json_array_elements_text($3::json)),
  moved AS (UPDATE forward_extremities SET event_id = $1::text WHERE room_id = $4::text AND event_id = $5::text RETURNING 1),
  cleared AS (DELETE FROM forward_extremities WHERE room_id = $4::text AND NOT EXISTS (SELECT 1 FROM moved))
  INSERT INTO forward_extremities (room_id, event_id) SELECT $4::text, $1::text WHERE NOT EXISTS (SELECT 1 FROM moved)`;

const APPEND_EVENT_CTES = `p AS (UPDATE stream_head SET position = position + 1 RETURNING position),
  ev AS (
    INSERT INTO events (event_id, room_id, stream_pos, depth, type, state_key, sender, origin_server_ts, pdu, state_group, replaces_state, membership, history_visibility, outlier, soft_failed)
    SELECT $1::text, $2::text, p.position, $3::bigint, $4::text, $5::text, $6::text, $7::bigint, $8::text, $9::bigint, $10::text, $11::text, $12::text, 0, 0 FROM p
  )`;
const ADVANCE_ROOM_PG = `UPDATE rooms SET depth = $3::bigint, last_pos = p.position, state_group = $9::bigint FROM p WHERE rooms.room_id = $2::text`;

const APPEND_EVENT_PG_TEXT = `WITH ${APPEND_EVENT_CTES} ${ADVANCE_ROOM_PG} RETURNING p.position AS position`;
/** The position, the event and the room's head in one round trip (see insertAtNextPosition). */
const APPEND_EVENT_PG = new RawHotQuery<{ position: number }>(APPEND_EVENT_PG_TEXT);

/** The same with the client's transaction recorded, failing on a taken one (appendStatement). */
const APPEND_EVENT_WITH_TXN_AT_COMMIT_PG = `WITH ${APPEND_EVENT_CTES},
  tx AS (INSERT INTO event_txns (user_id, device_id, txn_key, event_id, created_ts) VALUES ($13::text, $14::text, $15::text, $1::text, $16::bigint))
  ${ADVANCE_ROOM_PG} RETURNING p.position AS position`;

/** Whether `err` is appendStatement's commit failing on a transaction ID already taken. */
export function isTxnConflict(err: unknown): boolean {
  const e = err as { code?: unknown; table?: unknown } | null;
  return e?.code === '23505' && e.table === 'event_txns';
}

/**
 * The same with the client's transaction recorded. A conflict there does not stop the other parts:
 * `recorded` is 0 and the caller rolls the transaction back.
 */
const APPEND_EVENT_WITH_TXN_PG = new RawHotQuery<{ position: number; recorded: number }>(
  `WITH ${APPEND_EVENT_CTES},
  tx AS (
    INSERT INTO event_txns (user_id, device_id, txn_key, event_id, created_ts) VALUES ($13::text, $14::text, $15::text, $1::text, $16::bigint)
    ON CONFLICT (user_id, device_id, txn_key) DO NOTHING RETURNING 1
  )
  ${ADVANCE_ROOM_PG} RETURNING p.position AS position, (SELECT count(*) FROM tx)::int AS recorded`,
);

/**
 * A cached event's row with its changing columns as read. Spelled out: V8 builds `{ ...fixed, more }`
 * (a spread followed by properties) through a slow path, about 10 µs for a row like this one.
 */
function rowOf(f: FixedEventColumns, key: EventKey): EventRow {
  return {
    event_id: f.event_id,
    room_id: f.room_id,
    stream_pos: f.stream_pos,
    depth: f.depth,
    type: f.type,
    state_key: f.state_key,
    sender: f.sender,
    origin_server_ts: f.origin_server_ts,
    pdu: f.pdu,
    state_group: f.state_group,
    replaces_state: f.replaces_state,
    membership: f.membership,
    history_visibility: f.history_visibility,
    redacted_by: key.redacted_by,
    outlier: key.outlier,
    soft_failed: key.soft_failed,
    rejection_reason: key.rejection_reason,
    sender_erased: key.sender_erased,
  };
}

/**
 * A transaction key: what the transaction was for (room and endpoint), then the client's transaction
 * ID, the first prefixed by its length so that no choice of either can collide with another.
 */
export function txnKeyOf(purpose: string, txnId: string): string {
  return `${purpose.length}:${purpose}${txnId}`;
}

function txnIdOfKey(key: string): string {
  const colon = key.indexOf(':');
  return key.slice(colon + 1 + Number(key.slice(0, colon)));
}
