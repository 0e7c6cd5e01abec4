import { sql, type Kysely } from 'kysely';
import type { RoomRow } from './rooms.js';
import type { Database } from './schema.js';

/** Tables whose rows belong to one room's events (keyed by event ID). */
const EVENT_TABLES = ['event_edges', 'event_auth', 'event_txns'] as const;

/** Rooms as the admin API reads them in bulk, blocks them and purges them. */
export class AdminRoomsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /** Every room this server has. */
  all(): Promise<RoomRow[]> {
    return this.db.selectFrom('rooms').selectAll().orderBy('room_id').execute();
  }

  /** The current state events of these types, of the given rooms (all rooms when undefined), with their PDUs. */
  async stateEvents(types: readonly string[], roomIds?: readonly string[]): Promise<{ room_id: string; type: string; state_key: string; pdu: string }[]> {
    let query = this.db
      .selectFrom('current_state as c')
      .innerJoin('events as e', 'e.event_id', 'c.event_id')
      .select(['c.room_id', 'c.type', 'c.state_key', 'e.pdu'])
      .where('c.type', 'in', types)
      .where('c.state_key', '=', '');
    if (roomIds) query = query.where('c.room_id', 'in', roomIds.length > 0 ? roomIds : ['']);
    return query.execute();
  }

  /** Joined members and joined local members (those of `serverName`) per room. */
  async memberCounts(serverName: string, roomIds?: readonly string[]): Promise<Map<string, { joined: number; local: number }>> {
    let query = this.db
      .selectFrom('room_members')
      .select(['room_id', sql<number>`COUNT(*)`.as('joined'), sql<number>`SUM(CASE WHEN user_id LIKE ${'%:' + serverName} THEN 1 ELSE 0 END)`.as('local')])
      .where('membership', '=', 'join')
      .groupBy('room_id');
    if (roomIds) query = query.where('room_id', 'in', roomIds.length > 0 ? roomIds : ['']);
    const rows = await query.execute();
    return new Map(rows.map((r) => [r.room_id, { joined: Number(r.joined), local: Number(r.local) }]));
  }

  /** State events (current state entries) per room. */
  async stateCounts(roomIds?: readonly string[]): Promise<Map<string, number>> {
    let query = this.db.selectFrom('current_state').select(['room_id', sql<number>`COUNT(*)`.as('n')]).groupBy('room_id');
    if (roomIds) query = query.where('room_id', 'in', roomIds.length > 0 ? roomIds : ['']);
    const rows = await query.execute();
    return new Map(rows.map((r) => [r.room_id, Number(r.n)]));
  }

  /** Devices of the room's joined local members. */
  async joinedLocalDevices(roomId: string): Promise<number> {
    const row = await this.db
      .selectFrom('devices as d')
      .innerJoin('room_members as m', 'm.user_id', 'd.user_id')
      .select(sql<number>`COUNT(*)`.as('n'))
      .where('m.room_id', '=', roomId)
      .where('m.membership', '=', 'join')
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async block(roomId: string, userId: string, now: number): Promise<void> {
    await this.db.insertInto('blocked_rooms').values({ room_id: roomId, user_id: userId, created_ts: now }).onConflict((oc) => oc.column('room_id').doNothing()).execute();
  }

  async isBlocked(roomId: string): Promise<boolean> {
    const row = await this.db.selectFrom('blocked_rooms').select('room_id').where('room_id', '=', roomId).executeTakeFirst();
    return row !== undefined;
  }

  /**
   * Removes every row of the room: its events and what hangs off them (edges, auth, transaction
   * IDs, relations, the search index), state groups, current state, memberships, aliases, the room directory's row,
   * room account data and the room itself.
   * The caller runs it in a transaction holding the room's lock.
   */
  async purge(roomId: string): Promise<void> {
    const events = this.db.selectFrom('events').select('event_id').where('room_id', '=', roomId);
    for (const table of EVENT_TABLES) await this.db.deleteFrom(table).where('event_id', 'in', events).execute();
    const groups = this.db.selectFrom('state_groups').select('id').where('room_id', '=', roomId);
    await this.db.deleteFrom('state_group_entries').where('state_group', 'in', groups).execute();
    for (const table of ['state_groups', 'forward_extremities', 'current_state', 'room_members', 'room_aliases', 'event_relations', 'event_search', 'room_directory', 'events'] as const) {
      await this.db.deleteFrom(table).where('room_id', '=', roomId).execute();
    }
    await this.db.deleteFrom('account_data').where('room_id', '=', roomId).execute();
    await this.db.deleteFrom('rooms').where('room_id', '=', roomId).execute();
  }
}
