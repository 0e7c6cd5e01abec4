import { sql, type Kysely, type RawBuilder, type Selectable } from 'kysely';
import { anyOf } from './any-of.js';
import { HotQuery } from './compiled.js';
import type { Engine } from './db.js';
import type { RoomMembersTable, RoomsTable } from './rooms-schema.js';
import type { PresenceRow } from './presence.js';
import type { Database } from './schema.js';

export type RoomRow = Selectable<RoomsTable>;
export type MemberRow = Selectable<RoomMembersTable>;

/** A full copy of the state is written after this many deltas, so that reading a snapshot stays bounded. */
export const MAX_STATE_HOPS = 100;
/** State groups per statement reading their entries (SQLite binds each as a variable). */
const GROUP_CHUNK = 500;

/** Rooms, their current state and memberships, state snapshots, and aliases. */
export class RoomsRepo {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly engine: Engine,
  ) {}

  async create(row: Pick<RoomsTable, 'room_id' | 'room_version' | 'creator' | 'created_ts'>): Promise<void> {
    await this.db.insertInto('rooms').values({ ...row, is_public: 0, state_group: 0, depth: 0, last_pos: 0 }).execute();
  }

  get(roomId: string): Promise<RoomRow | undefined> {
    return this.db.selectFrom('rooms').selectAll().where('room_id', '=', roomId).executeTakeFirst();
  }

  /**
   * The room's row, locked until the transaction ends: events of one room are created one at a time,
   * across processes, so the room's DAG stays a single chain. SQLite runs one writer at a time anyway.
   */
  async lock(roomId: string): Promise<RoomRow | undefined> {
    return (await (this.engine === 'postgres' ? LOCK_ROOM_PG : ROOM_ROW).execute(this.db, roomId)).rows[0];
  }

  async advance(roomId: string, update: { depth: number; lastPos: number; stateGroup: number }): Promise<void> {
    await this.db.updateTable('rooms').set({ depth: update.depth, last_pos: update.lastPos, state_group: update.stateGroup }).where('room_id', '=', roomId).execute();
  }

  async setPublic(roomId: string, isPublic: boolean): Promise<void> {
    await this.db.updateTable('rooms').set({ is_public: isPublic ? 1 : 0 }).where('room_id', '=', roomId).execute();
  }

  /** Event IDs of the room's current state, for the (type, state_key) pairs asked (all when `keys` is undefined). */
  async currentStateIds(roomId: string, keys?: readonly (readonly [string, string])[]): Promise<{ type: string; state_key: string; event_id: string }[]> {
    let query = this.db.selectFrom('current_state').select(['type', 'state_key', 'event_id']).where('room_id', '=', roomId);
    if (keys) {
      if (keys.length === 0) return [];
      query = query.where((eb) => eb.or(keys.map(([type, stateKey]) => eb.and([eb('type', '=', type), eb('state_key', '=', stateKey)]))));
    }
    return query.execute();
  }

  async setCurrentState(roomId: string, type: string, stateKey: string, eventId: string): Promise<void> {
    await this.db
      .insertInto('current_state')
      .values({ room_id: roomId, type, state_key: stateKey, event_id: eventId })
      .onConflict((oc) => oc.columns(['room_id', 'type', 'state_key']).doUpdateSet({ event_id: eventId }))
      .execute();
  }

  /** Records a new state snapshot: a delta on `prevGroup`, or (prevGroup null) a full copy. */
  async addStateGroup(id: number, roomId: string, prevGroup: number | null, hops: number, entries: { type: string; state_key: string; event_id: string }[]): Promise<void> {
    await this.db.insertInto('state_groups').values({ id, room_id: roomId, prev_group: prevGroup, hops }).execute();
    for (let i = 0; i < entries.length; i += 300) {
      await this.db
        .insertInto('state_group_entries')
        .values(entries.slice(i, i + 300).map((e) => ({ state_group: id, ...e })))
        .execute();
    }
  }

  async stateGroupHops(id: number): Promise<number | undefined> {
    const row = await this.db.selectFrom('state_groups').select('hops').where('id', '=', id).executeTakeFirst();
    return row ? Number(row.hops) : undefined;
  }

  /**
   * The state snapshot `group` as (type, state_key) -> event ID, optionally only some types: the
   * chain of groups first (stateGroupChains), then their deltas by the primary key, later groups
   * winning.
   */
  async stateAt(group: number, types?: readonly string[]): Promise<Map<string, { type: string; state_key: string; event_id: string }>> {
    const state = new Map<string, { type: string; state_key: string; event_id: string }>();
    if (types?.length === 0) return state;
    const chain = (await this.stateGroupChains([group])).get(group) ?? [];
    const typeFilter = types ? sql<boolean>`type IN (${sql.join(types)})` : sql<boolean>`1 = 1`;
    const rows = await this.stateGroupEntries(chain, typeFilter);
    for (const row of rows) state.set(`${row.type}\u0000${row.state_key}`, { type: row.type, state_key: row.state_key, event_id: row.event_id });
    return state;
  }

  /**
   * Each group's chain: the group and those it is a delta on, oldest first (group IDs grow along a
   * chain), in one statement for all of them. Read apart from the deltas, the chain's few rows
   * come by the primary key, and the deltas are then one index lookup per group: a single statement
   * joining the recursive chain to the entries left PostgreSQL to guess the chain's length.
   */
  async stateGroupChains(groups: readonly number[]): Promise<Map<number, number[]>> {
    const out = new Map<number, number[]>();
    if (groups.length === 0) return out;
    const { rows } = await sql<{ origin: number; id: number }>`
      WITH RECURSIVE chain(origin, id, prev_group) AS (
        SELECT id, id, prev_group FROM state_groups WHERE ${anyOf(this.engine, 'id', [...new Set(groups)], 'bigint')}
        UNION ALL
        SELECT c.origin, g.id, g.prev_group FROM state_groups g JOIN chain c ON g.id = c.prev_group
      )
      SELECT origin, id FROM chain`.execute(this.db);
    for (const row of rows) {
      const origin = Number(row.origin);
      let chain = out.get(origin);
      if (!chain) out.set(origin, (chain = []));
      chain.push(Number(row.id));
    }
    for (const chain of out.values()) chain.sort((a, b) => a - b);
    return out;
  }

  /** The entries of these state groups that pass `filter` (on columns type, state_key), in group order. */
  async stateGroupEntries(groups: readonly number[], filter: RawBuilder<boolean>): Promise<{ state_group: number; type: string; state_key: string; event_id: string }[]> {
    const out: { state_group: number; type: string; state_key: string; event_id: string }[] = [];
    const unique = [...new Set(groups)];
    for (let i = 0; i < unique.length; i += GROUP_CHUNK) {
      const { rows } = await sql<{ state_group: number; type: string; state_key: string; event_id: string }>`
        SELECT state_group, type, state_key, event_id FROM state_group_entries
        WHERE ${anyOf(this.engine, 'state_group', unique.slice(i, i + GROUP_CHUNK), 'bigint')} AND ${filter}`.execute(this.db);
      for (const row of rows) out.push({ ...row, state_group: Number(row.state_group) });
    }
    return out.sort((a, b) => a.state_group - b.state_group);
  }

  async setMember(row: Omit<RoomMembersTable, 'forgotten'>): Promise<void> {
    await this.db
      .insertInto('room_members')
      .values({ ...row, forgotten: 0 })
      .onConflict((oc) =>
        oc.columns(['room_id', 'user_id']).doUpdateSet({
          membership: row.membership,
          event_id: row.event_id,
          stream_pos: row.stream_pos,
          sender: row.sender,
          displayname: row.displayname,
          avatar_url: row.avatar_url,
          forgotten: 0,
        }),
      )
      .execute();
  }

  async member(roomId: string, userId: string): Promise<MemberRow | undefined> {
    return (await MEMBER.execute(this.db, roomId, userId)).rows[0];
  }

  /** The room's members with these memberships (all when undefined). */
  members(roomId: string, memberships?: readonly string[]): Promise<MemberRow[]> {
    let query = this.db.selectFrom('room_members').selectAll().where('room_id', '=', roomId);
    if (memberships) query = query.where('membership', 'in', memberships);
    return query.orderBy('stream_pos').execute();
  }

  /** The room's joined members who are guest accounts. */
  async joinedGuests(roomId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('room_members')
      .innerJoin('users', 'users.user_id', 'room_members.user_id')
      .select('room_members.user_id')
      .where('room_members.room_id', '=', roomId)
      .where('room_members.membership', '=', 'join')
      .where('users.is_guest', '=', 1)
      .orderBy('room_members.stream_pos')
      .execute();
    return rows.map((r) => r.user_id);
  }

  /** The user's rooms with these memberships, forgotten ones left out. */
  roomsOf(userId: string, memberships: readonly string[]): Promise<MemberRow[]> {
    return this.db.selectFrom('room_members').selectAll().where('user_id', '=', userId).where('membership', 'in', memberships).where('forgotten', '=', 0).execute();
  }

  async forget(roomId: string, userId: string): Promise<void> {
    await this.db.updateTable('room_members').set({ forgotten: 1 }).where('room_id', '=', roomId).where('user_id', '=', userId).execute();
  }

  /** The rooms `userId` is joined to. */
  async joinedRooms(userId: string): Promise<string[]> {
    const rows = await this.db.selectFrom('room_members').select('room_id').where('user_id', '=', userId).where('membership', '=', 'join').execute();
    return rows.map((r) => r.room_id);
  }

  /** The presence of `roomId`'s joined members that changed in (after, upto]. */
  async membersPresenceChanged(roomId: string, after: number, upto: number): Promise<PresenceRow[]> {
    return this.db
      .selectFrom('presence')
      .selectAll()
      .where('stream_pos', '>', after)
      .where('stream_pos', '<=', upto)
      .where('user_id', 'in', (eb) => eb.selectFrom('room_members').select('user_id').where('room_id', '=', roomId).where('membership', '=', 'join'))
      .execute();
  }

  /** Users who share a room (joined) with `userId`, the user included. */
  async roomMates(userId: string, roomIds?: readonly string[]): Promise<string[]> {
    let query = this.db
      .selectFrom('room_members as other')
      .innerJoin('room_members as mine', 'mine.room_id', 'other.room_id')
      .select('other.user_id')
      .distinct()
      .where('mine.user_id', '=', userId)
      .where('mine.membership', '=', 'join')
      .where('other.membership', '=', 'join');
    if (roomIds) query = query.where('mine.room_id', 'in', roomIds.length > 0 ? roomIds : ['']);
    const rows = await query.execute();
    return rows.map((r) => r.user_id);
  }

  /** Whether the two users are both joined to some room. */
  async shareRoom(userId: string, otherId: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('room_members as mine')
      .innerJoin('room_members as other', 'other.room_id', 'mine.room_id')
      .select('mine.room_id')
      .where('mine.user_id', '=', userId)
      .where('mine.membership', '=', 'join')
      .where('other.user_id', '=', otherId)
      .where('other.membership', '=', 'join')
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  async aliasRoom(alias: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('room_aliases').select('room_id').where('alias', '=', alias).executeTakeFirst();
    return row?.room_id;
  }

  async aliasCreator(alias: string): Promise<{ room_id: string; creator: string } | undefined> {
    return this.db.selectFrom('room_aliases').select(['room_id', 'creator']).where('alias', '=', alias).executeTakeFirst();
  }

  /** False when the alias is taken. */
  async addAlias(alias: string, roomId: string, creator: string, now: number): Promise<boolean> {
    const row = await this.db
      .insertInto('room_aliases')
      .values({ alias, room_id: roomId, creator, created_ts: now })
      .onConflict((oc) => oc.column('alias').doNothing())
      .returning('alias')
      .executeTakeFirst();
    return row !== undefined;
  }

  async deleteAlias(alias: string): Promise<void> {
    await this.db.deleteFrom('room_aliases').where('alias', '=', alias).execute();
  }

  /** Points every alias of `from` at `to` (a room upgrade). */
  async moveAliases(from: string, to: string): Promise<void> {
    await this.db.updateTable('room_aliases').set({ room_id: to }).where('room_id', '=', from).execute();
  }

  async aliasesOf(roomId: string): Promise<string[]> {
    const rows = await this.db.selectFrom('room_aliases').select('alias').where('room_id', '=', roomId).orderBy('alias').execute();
    return rows.map((r) => r.alias);
  }
}

/** Every membership check (each send, receipt and room read) runs it. */
/** A room's row, locked for the transaction (every write of the room takes it first). */
const LOCK_ROOM_PG = new HotQuery((db: Kysely<Database>, roomId: string) => db.selectFrom('rooms').selectAll().where('room_id', '=', roomId).forUpdate());
/** On SQLite the transaction's write lock is the room's. */
const ROOM_ROW = new HotQuery((db: Kysely<Database>, roomId: string) => db.selectFrom('rooms').selectAll().where('room_id', '=', roomId));

const MEMBER = new HotQuery((db: Kysely<Database>, roomId: string, userId: string) =>
  db.selectFrom('room_members').selectAll().where('room_id', '=', roomId).where('user_id', '=', userId),
);
