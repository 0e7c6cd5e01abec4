import type { Clock } from '../../clock.js';
import type { Config } from '../../config/index.js';
import { MatrixError, invalidParam, notFound } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import type { RoomRow } from '../../storage/rooms.js';
import type { RoomService } from '../rooms/rooms.js';
import { isRoomId } from '../user-ids.js';

/** Synapse's order_by values for the room list; `alphabetical` and `size` are its deprecated names for `name` and `joined_members`. */
export const ROOM_ORDERS = [
  'name',
  'alphabetical',
  'size',
  'canonical_alias',
  'joined_members',
  'joined_local_members',
  'version',
  'creator',
  'encryption',
  'federatable',
  'public',
  'join_rules',
  'guest_access',
  'history_visibility',
  'state_events',
] as const;
export type RoomOrder = (typeof ROOM_ORDERS)[number];

/** Orders that list the largest first when dir is f, as Synapse's do. */
const LARGEST_FIRST = new Set<RoomOrder>(['size', 'joined_members', 'joined_local_members', 'version', 'state_events']);

export interface RoomListRequest {
  from: number;
  limit: number;
  order_by: RoomOrder;
  dir: 'f' | 'b';
  search_term?: string | undefined;
  public_rooms?: boolean | undefined;
  empty_rooms?: boolean | undefined;
}

/** DELETE /_synapse/admin/v1/rooms/{roomId}, as parsed at the edge. */
export interface RoomDeletion {
  new_room_user_id?: string | undefined;
  block: boolean;
  purge: boolean;
  force_purge: boolean;
}

/** A room in the list's shape. */
export interface RoomSummary {
  room_id: string;
  name: string | null;
  canonical_alias: string | null;
  joined_members: number;
  joined_local_members: number;
  version: string;
  creator: string;
  encryption: string | null;
  federatable: boolean;
  public: boolean;
  join_rules: string | null;
  guest_access: string | null;
  history_visibility: string | null;
  state_events: number;
  room_type: string | null;
}

const SUMMARY_TYPES = ['m.room.create', 'm.room.name', 'm.room.canonical_alias', 'm.room.encryption', 'm.room.join_rules', 'm.room.guest_access', 'm.room.history_visibility', 'm.room.topic', 'm.room.avatar'];

type Contents = Map<string, Record<string, unknown>>;

function text(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

/** Compares sort keys: missing values first, numbers as numbers, texts by code point. */
function compareKeys(a: string | number | boolean | null, b: string | number | boolean | null): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  const x = typeof a === 'boolean' ? Number(a) : a;
  const y = typeof b === 'boolean' ? Number(b) : b;
  if (typeof x === 'number' && typeof y === 'number') return x - y;
  const [sx, sy] = [String(x), String(y)];
  if (/^\d+$/.test(sx) && /^\d+$/.test(sy)) return Number(sx) - Number(sy);
  return sx < sy ? -1 : sx > sy ? 1 : 0;
}

function sortKey(room: RoomSummary, order: RoomOrder): string | number | boolean | null {
  switch (order) {
    case 'alphabetical':
      return room.name;
    case 'size':
      return room.joined_members;
    default:
      return room[order];
  }
}

/** The admin API's rooms: Synapse's list, details and members shapes, and deleting a room. */
export class AdminRoomService {
  constructor(
    private readonly store: Store,
    private readonly rooms: RoomService,
    private readonly clock: Clock,
    private readonly config: Config,
  ) {}

  private checkRoomId(roomId: string): void {
    if (!isRoomId(roomId)) throw invalidParam(`${roomId.slice(0, 300)} is not a legal room ID`);
  }

  private async existing(roomId: string): Promise<RoomRow> {
    this.checkRoomId(roomId);
    const room = await this.store.rooms.get(roomId);
    if (!room) throw notFound('Room not found');
    return room;
  }

  /** Summaries of these rooms from a few bulk reads (their current state, member and state counts). */
  private async summaries(rooms: RoomRow[], only?: readonly string[]): Promise<{ summary: RoomSummary; contents: Contents }[]> {
    const contents = new Map<string, Contents>();
    for (const row of await this.store.adminRooms.stateEvents(SUMMARY_TYPES, only)) {
      let content: unknown;
      try {
        content = (JSON.parse(row.pdu) as { content?: unknown }).content;
      } catch {
        continue;
      }
      if (content === null || typeof content !== 'object') continue;
      let byType = contents.get(row.room_id);
      if (!byType) contents.set(row.room_id, (byType = new Map()));
      byType.set(row.type, content as Record<string, unknown>);
    }
    const members = await this.store.adminRooms.memberCounts(this.config.server_name, only);
    const stateCounts = await this.store.adminRooms.stateCounts(only);
    return rooms.map((room) => {
      const state = contents.get(room.room_id) ?? new Map<string, Record<string, unknown>>();
      const create = state.get('m.room.create') ?? {};
      const counts = members.get(room.room_id) ?? { joined: 0, local: 0 };
      const summary: RoomSummary = {
        room_id: room.room_id,
        name: text(state.get('m.room.name')?.name),
        canonical_alias: text(state.get('m.room.canonical_alias')?.alias),
        joined_members: counts.joined,
        joined_local_members: counts.local,
        version: room.room_version,
        creator: room.creator,
        encryption: text(state.get('m.room.encryption')?.algorithm),
        federatable: create['m.federate'] !== false,
        public: room.is_public === 1,
        join_rules: text(state.get('m.room.join_rules')?.join_rule),
        guest_access: text(state.get('m.room.guest_access')?.guest_access),
        history_visibility: text(state.get('m.room.history_visibility')?.history_visibility),
        state_events: stateCounts.get(room.room_id) ?? 0,
        room_type: text(create.type),
      };
      return { summary, contents: state };
    });
  }

  async list(req: RoomListRequest): Promise<Record<string, unknown>> {
    const all = await this.store.adminRooms.all();
    let rooms = (await this.summaries(all)).map((s) => s.summary);
    if (req.search_term !== undefined && req.search_term !== '') {
      const term = req.search_term;
      const lower = term.toLowerCase();
      rooms = rooms.filter((r) => {
        const aliasLocalpart = r.canonical_alias?.slice(1, r.canonical_alias.indexOf(':') >= 0 ? r.canonical_alias.indexOf(':') : undefined);
        return (r.name ?? '').toLowerCase().includes(lower) || (aliasLocalpart ?? '').toLowerCase().includes(lower) || r.room_id.includes(term);
      });
    }
    if (req.public_rooms !== undefined) rooms = rooms.filter((r) => r.public === req.public_rooms);
    if (req.empty_rooms !== undefined) rooms = rooms.filter((r) => (r.joined_members === 0) === req.empty_rooms);
    const ascending = LARGEST_FIRST.has(req.order_by) !== (req.dir === 'f');
    rooms.sort((a, b) => {
      const order = compareKeys(sortKey(a, req.order_by), sortKey(b, req.order_by));
      return (ascending ? order : -order) || compareKeys(a.room_id, b.room_id);
    });
    const total = rooms.length;
    const page = rooms.slice(req.from, req.from + req.limit);
    const answer: Record<string, unknown> = { rooms: page, offset: req.from, total_rooms: total };
    if (req.from + req.limit < total) answer.next_batch = req.from + req.limit;
    if (req.from > 0) answer.prev_batch = Math.max(0, req.from - req.limit);
    return answer;
  }

  async details(roomId: string): Promise<Record<string, unknown>> {
    const room = await this.existing(roomId);
    const [{ summary, contents }] = (await this.summaries([room], [roomId])) as [{ summary: RoomSummary; contents: Contents }];
    const members = await this.store.rooms.members(roomId);
    const local = members.filter((m) => this.rooms.isLocalUser(m.user_id));
    return {
      ...summary,
      topic: text(contents.get('m.room.topic')?.topic),
      avatar: text(contents.get('m.room.avatar')?.url),
      joined_local_devices: await this.store.adminRooms.joinedLocalDevices(roomId),
      forgotten: local.every((m) => m.forgotten === 1),
    };
  }

  async members(roomId: string): Promise<{ members: string[]; total: number }> {
    await this.existing(roomId);
    const members = (await this.store.rooms.members(roomId, ['join'])).map((m) => m.user_id);
    return { members, total: members.length };
  }

  /**
   * Synapse's room deletion (v1, synchronous): local members leave (joined, invited and knocking
   * ones, each leaving as themselves), the room's local aliases go and it leaves the directory; with
   * `block` no one may join it again; with `purge` every row of it is then removed.
   */
  async delete(adminId: string, roomId: string, req: RoomDeletion): Promise<Record<string, unknown>> {
    this.checkRoomId(roomId);
    if (req.new_room_user_id !== undefined) throw invalidParam('new_room_user_id is not supported: local users leave the room, and no new room is made');
    const room = await this.store.rooms.get(roomId);
    const result = { kicked_users: [] as string[], failed_to_kick_users: [] as string[], local_aliases: [] as string[], new_room_id: null };
    if (!room) {
      // As Synapse does, a room this server does not know can be blocked before anyone joins it.
      if (!req.block) throw notFound('Unknown room');
      await this.store.adminRooms.block(roomId, adminId, this.clock.now());
      return result;
    }
    if (req.block) await this.store.adminRooms.block(roomId, adminId, this.clock.now());
    const locals = (await this.store.rooms.members(roomId, ['join', 'invite', 'knock'])).filter((m) => this.rooms.isLocalUser(m.user_id));
    for (const member of locals) {
      try {
        await this.rooms.leave(member.user_id, roomId, member.user_id);
        result.kicked_users.push(member.user_id);
      } catch {
        result.failed_to_kick_users.push(member.user_id);
      }
    }
    result.local_aliases = await this.store.rooms.aliasesOf(roomId);
    for (const alias of result.local_aliases) await this.store.rooms.deleteAlias(alias);
    await this.store.rooms.setPublic(roomId, false);
    if (req.purge) await this.purge(roomId, req.force_purge);
    return result;
  }

  private async purge(roomId: string, force: boolean): Promise<void> {
    await this.store.transaction(async (tx) => {
      // The room's lock: a write racing the purge waits, then finds no room.
      if (!(await tx.rooms.lock(roomId))) return;
      const stillIn = (await tx.rooms.members(roomId, ['join'])).filter((m) => this.rooms.isLocalUser(m.user_id));
      if (stillIn.length > 0 && !force) {
        throw new MatrixError(400, 'M_UNKNOWN', `Local users are still in the room (${stillIn.map((m) => m.user_id).join(', ')}); force_purge purges it anyway`);
      }
      await tx.adminRooms.purge(roomId);
    });
  }
}
