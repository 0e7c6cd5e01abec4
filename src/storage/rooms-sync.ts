import { sql, type Kysely } from 'kysely';
import { anyOf } from './any-of.js';
import { HotQuery } from './compiled.js';
import type { Engine } from './db.js';
import { MUTABLE_EVENT_COLUMNS, type EventKey } from './event-cache.js';
import type { EventRow, EventsRepo } from './events.js';
import type { PushCountRow } from './push.js';
import { RoomsRepo, type MemberRow } from './rooms.js';
import type { Database } from './schema.js';
import { ephemeralRoomsSince } from './sync-account.js';

/** Rooms per batched statement: each costs a few bound variables, well under SQLite's limit. */
const ROOM_CHUNK = 100;
/** Rows per IN (...) list. */
const CHUNK = 500;

export interface StateEntry {
  type: string;
  state_key: string;
  event_id: string;
}

/** A state event's key and place, as sync needs it to work out state deltas. */
export interface StateEventRef extends StateEntry {
  stream_pos: number;
  membership: string | null;
}

/**
 * Which entries of a state snapshot to read: every non-member entry or none, and the member
 * entries of every user (`'all'`) or of the users listed.
 */
export interface StateSelection {
  others: boolean;
  members: 'all' | readonly string[];
}

/** A user's membership of a room as sync reads it, with the room's latest stream position. */
export type MembershipRow = Pick<MemberRow, 'room_id' | 'membership' | 'event_id' | 'stream_pos' | 'forgotten'> & {
  last_pos: number;
  /** Read with the rest of a sync's account side (sync-account.ts): whether a receipt or typing changed in the room since the token. */
  ephemeral?: boolean;
  /** Read the same way: the user's push_counts rows in the room. */
  unread?: PushCountRow[];
};

// Sync's hot reads, built once (see compiled.ts): every incremental sync and long-poll runs them.
const membershipColumns = ['m.room_id', 'm.membership', 'm.event_id', 'm.stream_pos', 'm.forgotten', 'r.last_pos'] as const;
const allMemberships = new HotQuery((db, userId: string) =>
  db.selectFrom('room_members as m').innerJoin('rooms as r', 'r.room_id', 'm.room_id').select(membershipColumns).where('m.user_id', '=', userId),
);
const currentMemberships = new HotQuery((db, userId: string, after: number) =>
  db
    .selectFrom('room_members as m')
    .innerJoin('rooms as r', 'r.room_id', 'm.room_id')
    .select(membershipColumns)
    .where('m.user_id', '=', userId)
    .where((eb) => eb.or([eb('m.membership', '=', 'join'), eb('m.stream_pos', '>', after)])),
);
const changedMemberships = new HotQuery((db, userId: string, after: number) =>
  db
    .selectFrom('room_members as m')
    .innerJoin('rooms as r', 'r.room_id', 'm.room_id')
    .select(membershipColumns)
    .where('m.user_id', '=', userId)
    .where((eb) =>
      eb.or([
        eb('m.stream_pos', '>', after),
        eb.and([eb('m.membership', '=', 'join'), eb.or([eb('r.last_pos', '>', after), eb('m.room_id', 'in', sql<string>`(${ephemeralRoomsSince(after)})` as never)])]),
      ]),
    ),
);
const joinedRooms = new HotQuery((db, userId: string) => db.selectFrom('room_members').select('room_id').where('user_id', '=', userId).where('membership', '=', 'join'));

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * The reads of /sync's rooms section, batched over rooms: one statement for many rooms rather than
 * one per room wherever the engines allow.
 */
export class RoomSyncRepo {
  private readonly rooms: RoomsRepo;

  constructor(
    private readonly db: Kysely<Database>,
    /** Completes the events read as keys (see EventsRepo.complete). */
    private readonly events: EventsRepo,
    private readonly engine: Engine,
  ) {
    this.rooms = new RoomsRepo(db, engine);
  }

  /**
   * The user's membership rows a sync looks at, each with its room's latest position: every row
   * when `after` is undefined (an initial sync), else those of the rooms where the user's membership
   * changed after `after` and of the joined rooms where anything happened after it (with
   * `allJoined`, of every joined room). Forgotten rooms are included; the caller leaves them out.
   */
  async memberships(userId: string, after: number | undefined, allJoined = false): Promise<MembershipRow[]> {
    if (after === undefined) return (await allMemberships.execute(this.db, userId)).rows;
    return (await (allJoined ? currentMemberships : changedMemberships).execute(this.db, userId, after)).rows;
  }

  /** The user's membership rows of these rooms, with each room's latest position. */
  async membershipsIn(userId: string, roomIds: readonly string[]): Promise<MembershipRow[]> {
    const out: MembershipRow[] = [];
    for (const chunk of chunks(roomIds, CHUNK)) {
      out.push(
        ...(await this.db
          .selectFrom('room_members as m')
          .innerJoin('rooms as r', 'r.room_id', 'm.room_id')
          .select(membershipColumns)
          .where('m.user_id', '=', userId)
          .where(anyOf(this.engine, 'm.room_id', chunk))
          .execute()),
      );
    }
    return out;
  }

  /** The IDs of the rooms the user is joined to. */
  async joinedRoomIds(userId: string): Promise<string[]> {
    const { rows } = await joinedRooms.execute(this.db, userId);
    return rows.map((r) => r.room_id);
  }

  /**
   * For each request, the room's events in (after, upto], newest first, at most `limit`: one
   * statement per chunk of rooms (a UNION ALL of per-room index range scans) reading the events'
   * keys, then the rows from the event cache (those it lacks read by ID).
   */
  async latestMany(requests: readonly { roomId: string; after: number; upto: number; limit: number }[]): Promise<Map<string, EventRow[]>> {
    const out = new Map<string, EventRow[]>();
    const columns = sql.join(['event_id', ...MUTABLE_EVENT_COLUMNS].map((c) => sql.ref(c)));
    for (const chunk of chunks(requests, ROOM_CHUNK)) {
      let query;
      if (this.engine === 'postgres') {
        // One subquery, run per room (LATERAL): a UNION ALL of 100 costs PostgreSQL more to plan than to run.
        query = sql<EventKey>`
          SELECT t.* FROM unnest(${chunk.map((r) => r.roomId)}::text[], ${chunk.map((r) => r.after)}::bigint[], ${chunk.map((r) => r.upto)}::bigint[], ${chunk.map((r) => r.limit)}::int[])
            AS r(room_id, after_pos, upto_pos, lim)
          CROSS JOIN LATERAL (
            SELECT ${columns} FROM events e WHERE e.room_id = r.room_id AND e.stream_pos > r.after_pos AND e.stream_pos <= r.upto_pos ORDER BY e.stream_pos DESC LIMIT r.lim
          ) AS t`;
      } else {
        const parts = chunk.map(
          (r) =>
            sql`SELECT * FROM (SELECT ${columns} FROM events WHERE room_id = ${r.roomId} AND stream_pos > ${r.after} AND stream_pos <= ${r.upto} ORDER BY stream_pos DESC LIMIT ${r.limit}) AS t`,
        );
        query = sql<EventKey>`${sql.join(parts, sql` UNION ALL `)}`;
      }
      const { rows: keys } = await query.execute(this.db);
      for (const r of chunk) out.set(r.roomId, []);
      for (const row of await this.events.complete(keys)) out.get(row.room_id)?.push(row);
    }
    for (const list of out.values()) list.sort((a, b) => Number(b.stream_pos) - Number(a.stream_pos));
    return out;
  }

  /**
   * The state snapshot `group`, only the entries `select` asks for: the deltas down the group's
   * chain in one statement, later groups winning (group IDs grow along a chain).
   */
  async stateAt(group: number, select: StateSelection): Promise<Map<string, StateEntry>> {
    return (await this.stateAtMany([{ group, select }]))[0]!;
  }

  /**
   * Several state snapshots (one per request, in order), each only the entries its selection asks
   * for: the chains of all the groups in one statement, then their entries (the union of the
   * selections) by the primary key.
   */
  async stateAtMany(requests: readonly { group: number; select: StateSelection }[]): Promise<Map<string, StateEntry>[]> {
    const out = requests.map(() => new Map<string, StateEntry>());
    if (requests.length === 0) return out;
    const others = requests.some((r) => r.select.others);
    const members: 'all' | string[] = requests.some((r) => r.select.members === 'all') ? 'all' : [...new Set(requests.flatMap((r) => r.select.members as readonly string[]))];
    if (members !== 'all' && members.length > CHUNK) {
      // A long member list: the members' entries in chunks, the others once.
      for (const [i, r] of requests.entries()) {
        const list = r.select.members as readonly string[];
        if (r.select.others) for (const [key, entry] of (await this.stateAtMany([{ group: r.group, select: { others: true, members: [] } }]))[0]!) out[i]!.set(key, entry);
        for (const part of chunks(list, CHUNK)) for (const [key, entry] of (await this.stateAtMany([{ group: r.group, select: { others: false, members: part } }]))[0]!) out[i]!.set(key, entry);
      }
      return out;
    }
    let filter;
    if (members === 'all') filter = others ? sql<boolean>`1 = 1` : sql<boolean>`type = 'm.room.member'`;
    else {
      const selected = members.length > 0 ? sql`(type = 'm.room.member' AND state_key IN (${sql.join(members)}))` : sql`1 = 0`;
      filter = others ? sql<boolean>`(type <> 'm.room.member' OR ${selected})` : sql<boolean>`${selected}`;
    }
    const byGroup = new Map<number, number[]>();
    for (const [i, r] of requests.entries()) {
      let list = byGroup.get(r.group);
      if (!list) byGroup.set(r.group, (list = []));
      list.push(i);
    }
    const memberSets = requests.map((r) => (r.select.members === 'all' ? undefined : new Set(r.select.members)));
    // The chains first, then every group's entries at once (see RoomsRepo.stateGroupChains).
    const chains = await this.rooms.stateGroupChains([...byGroup.keys()]);
    const entries = new Map<number, { type: string; state_key: string; event_id: string }[]>();
    for (const row of await this.rooms.stateGroupEntries([...chains.values()].flat(), filter)) {
      let list = entries.get(row.state_group);
      if (!list) entries.set(row.state_group, (list = []));
      list.push(row);
    }
    for (const [origin, chain] of chains) {
      for (const i of byGroup.get(origin) ?? []) {
        const set = memberSets[i];
        const state = out[i]!;
        for (const group of chain) {
          for (const row of entries.get(group) ?? []) {
            const wanted = row.type === 'm.room.member' ? set === undefined || set.has(row.state_key) : requests[i]!.select.others;
            if (wanted) state.set(`${row.type}\u0000${row.state_key}`, { type: row.type, state_key: row.state_key, event_id: row.event_id });
          }
        }
      }
    }
    return out;
  }

  /** The room's state events in (after, before), oldest first: what changed in a sync's gap. */
  async stateEventsBetween(roomId: string, after: number, before: number): Promise<StateEventRef[]> {
    const rows = await this.db
      .selectFrom('events')
      .select(['event_id', 'type', 'state_key', 'stream_pos', 'membership'])
      .where('room_id', '=', roomId)
      .where('stream_pos', '>', after)
      .where('stream_pos', '<', before)
      .where('state_key', 'is not', null)
      .orderBy('stream_pos')
      .execute();
    return rows.map((r) => ({ event_id: r.event_id, type: r.type, state_key: r.state_key!, stream_pos: Number(r.stream_pos), membership: r.membership }));
  }

  /** Member events of these rooms in (after, upto], oldest first: whose membership changed. */
  async memberEventsBetween(roomIds: readonly string[], after: number, upto: number): Promise<{ room_id: string; state_key: string; membership: string | null }[]> {
    const out: { room_id: string; state_key: string; membership: string | null }[] = [];
    for (const chunk of chunks(roomIds, CHUNK)) {
      const rows = await this.db
        .selectFrom('events')
        .select(['room_id', 'state_key', 'membership', 'stream_pos'])
        .where(anyOf(this.engine, 'room_id', chunk))
        .where('stream_pos', '>', after)
        .where('stream_pos', '<=', upto)
        .where('type', '=', 'm.room.member')
        .orderBy('stream_pos')
        .execute();
      for (const row of rows) out.push({ room_id: row.room_id, state_key: row.state_key!, membership: row.membership });
    }
    return out;
  }

  /** Joined and invited member counts of these rooms. */
  async memberCounts(roomIds: readonly string[]): Promise<Map<string, { joined: number; invited: number }>> {
    const out = new Map<string, { joined: number; invited: number }>();
    for (const id of roomIds) out.set(id, { joined: 0, invited: 0 });
    for (const chunk of chunks(roomIds, CHUNK)) {
      const rows = await this.db
        .selectFrom('room_members')
        .select(['room_id', 'membership', (eb) => eb.fn.countAll<number>().as('n')])
        .where(anyOf(this.engine, 'room_id', chunk))
        .where('membership', 'in', ['join', 'invite'])
        .groupBy(['room_id', 'membership'])
        .execute();
      for (const row of rows) {
        const counts = out.get(row.room_id)!;
        if (row.membership === 'join') counts.joined = Number(row.n);
        else counts.invited = Number(row.n);
      }
    }
    return out;
  }

  /**
   * Up to `count` members of each room other than `userId` with one of `memberships`, in stream
   * order of their membership: the room summary's heroes.
   */
  async heroes(roomIds: readonly string[], userId: string, memberships: readonly string[], count: number): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const chunk of chunks(roomIds, CHUNK)) {
      const { rows } = await sql<{ room_id: string; user_id: string }>`
        SELECT room_id, user_id FROM (
          SELECT room_id, user_id, stream_pos, ROW_NUMBER() OVER (PARTITION BY room_id ORDER BY stream_pos, user_id) AS n
          FROM room_members
          WHERE ${anyOf(this.engine, 'room_id', chunk)} AND membership IN (${sql.join([...memberships])}) AND user_id <> ${userId}
        ) AS ranked
        WHERE n <= ${count}
        ORDER BY room_id, stream_pos, user_id`.execute(this.db);
      for (const row of rows) {
        let list = out.get(row.room_id);
        if (!list) out.set(row.room_id, (list = []));
        list.push(row.user_id);
      }
    }
    return out;
  }

  /**
   * Those of these rooms with a name or a canonical alias (non-empty): the rooms whose summary has
   * no heroes, as clients need heroes only to make up a name.
   */
  async namedRooms(roomIds: readonly string[]): Promise<Set<string>> {
    const named = new Set<string>();
    for (const chunk of chunks(roomIds, CHUNK)) {
      const refs = await this.db
        .selectFrom('current_state')
        .select(['room_id', 'event_id'])
        .where(anyOf(this.engine, 'room_id', chunk))
        .where('type', 'in', ['m.room.name', 'm.room.canonical_alias'])
        .where('state_key', '=', '')
        .execute();
      for (const row of await this.events.getMany(refs.map((r) => r.event_id))) {
        let content: { name?: unknown; alias?: unknown } | undefined;
        try {
          content = (JSON.parse(row.pdu) as { content?: { name?: unknown; alias?: unknown } }).content;
        } catch {
          content = undefined;
        }
        const value = row.type === 'm.room.name' ? content?.name : content?.alias;
        if (typeof value === 'string' && value !== '') named.add(row.room_id);
      }
    }
    return named;
  }

  /** The joined members of these rooms. */
  async joinedMembers(roomIds: readonly string[]): Promise<string[]> {
    const out = new Set<string>();
    for (const chunk of chunks(roomIds, CHUNK)) {
      const rows = await this.db.selectFrom('room_members').select('user_id').distinct().where(anyOf(this.engine, 'room_id', chunk)).where('membership', '=', 'join').execute();
      for (const row of rows) out.add(row.user_id);
    }
    return [...out];
  }
}
