import type { Clock } from '../../clock.js';
import { forbidden, invalidParam, MatrixError, notFound } from '../../errors.js';
import type { EventRow } from '../../storage/events.js';
import type { Store } from '../../storage/index.js';
import type { RoomRow } from '../../storage/rooms.js';
import type { JsonObject } from '../../validate.js';
import type { Requester } from '../devices.js';
import { applyEventFilter, type Filter } from '../sync/filters.js';
import type { ClientEvent, ClientEventSerializer, Viewer } from './client-event.js';
import { encodeRoomToken, parseRoomToken, pointAfter, pointBefore, type RoomPoint } from './room-token.js';
import { stateKeyOf } from './pdu.js';
import { historyVisibilityOf, RoomVisibility } from './visibility.js';

/** The RoomEventFilter of /messages and /context (the spec's, as sync's filters parse it). */
export type RoomEventFilter = NonNullable<NonNullable<Filter['room']>['timeline']>;

export type Membership = 'join' | 'invite' | 'knock' | 'leave' | 'ban';

/** The most events one /messages or /context answers, whatever limit is asked. */
export const MAX_PAGE_LIMIT = 1000;
export const DEFAULT_PAGE_LIMIT = 10;
/** Pages read to fill one /messages answer when visibility or the filter leaves events out. */
const MAX_ROUNDS = 5;

/**
 * How a user may read a room: joined (everything up to now), departed (what they could see up to
 * their leave or ban, and the state then), or a stranger to a world_readable room.
 */
export interface Access {
  room: RoomRow;
  visibility: RoomVisibility;
  viewer: Viewer;
  /** For a user who left or was banned: their last member event, the end of what they may read. */
  departed?: EventRow;
}

export interface MessagesQuery {
  from?: string;
  to?: string;
  dir: 'b' | 'f';
  limit?: number;
  filter?: RoomEventFilter;
}

export interface MessagesResponse {
  chunk: ClientEvent[];
  start: string;
  end?: string;
  state?: ClientEvent[];
}

export interface ContextResponse {
  event: ClientEvent;
  events_before: ClientEvent[];
  events_after: ClientEvent[];
  start: string;
  end: string;
  state: ClientEvent[];
}

export interface RoomInitialSync {
  room_id: string;
  membership?: Membership;
  messages: { chunk: ClientEvent[]; start: string; end: string };
  state: ClientEvent[];
  visibility: 'public' | 'private';
  account_data: { type: string; content: JsonObject }[];
}

interface Page {
  rows: EventRow[];
  cursor: RoomPoint;
  exhausted: boolean;
}

type StateEntry = { type: string; state_key: string; event_id: string };

/**
 * Every read of a room's events and state (single events, state, /messages, /context, members),
 * with history visibility applied to each event served.
 */
export class RoomReadService {
  constructor(
    private readonly store: Store,
    private readonly serializer: ClientEventSerializer,
    private readonly clock: Clock,
  ) {}

  async joinedRooms(userId: string): Promise<string[]> {
    return (await this.store.rooms.roomsOf(userId, ['join'])).map((m) => m.room_id);
  }

  /** One event; the spec answers 404 both for an unknown event and for one the user may not read. */
  async event(requester: Requester, roomId: string, eventId: string): Promise<ClientEvent> {
    const access = await this.access(roomId, requester).catch((err: unknown) => {
      throw err instanceof MatrixError && err.errcode === 'M_FORBIDDEN' ? notFound('Event not found') : err;
    });
    const row = await this.store.events.get(eventId);
    if (!row || row.room_id !== roomId || !this.readable(access, row)) throw notFound('Event not found');
    return (await this.serialize([row], access))[0]!;
  }

  /** The room's state: current, or for a departed user the state when they left. */
  async state(requester: Requester, roomId: string): Promise<ClientEvent[]> {
    const access = await this.access(roomId, requester);
    const rows = access.departed ? await this.rowsOf([...(await this.store.rooms.stateAt(Number(access.departed.state_group))).values()]) : sortState(await this.store.events.currentState(roomId));
    return this.serialize(rows, access);
  }

  /** The room's local aliases, for whoever may read the room (a member, or anyone when it is world_readable). */
  async aliases(requester: Requester, roomId: string): Promise<string[]> {
    await this.access(roomId, requester);
    return this.store.rooms.aliasesOf(roomId);
  }

  async stateEvent(requester: Requester, roomId: string, type: string, stateKey: string): Promise<ClientEvent> {
    const access = await this.access(roomId, requester);
    const entry = access.departed
      ? (await this.store.rooms.stateAt(Number(access.departed.state_group), [type])).get(stateKeyOf(type, stateKey))
      : (await this.store.rooms.currentStateIds(roomId, [[type, stateKey]]))[0];
    const row = entry ? await this.store.events.get(entry.event_id) : undefined;
    if (!row) throw notFound('Event not found');
    return (await this.serialize([row], access))[0]!;
  }

  async messages(requester: Requester, roomId: string, query: MessagesQuery): Promise<MessagesResponse> {
    const access = await this.access(roomId, requester);
    const limit = Math.min(query.limit ?? query.filter?.limit ?? DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT);
    let from = query.from !== undefined ? await this.point(query.from, roomId) : query.dir === 'b' ? { depth: Number(access.room.depth), pos: Number(access.room.last_pos) } : { depth: 0, pos: 0 };
    let to = query.to !== undefined ? await this.point(query.to, roomId) : undefined;
    if (access.departed) {
      const cap = pointAfter(access.departed);
      if (query.dir === 'b') from = earlier(from, cap);
      else to = to ? earlier(to, cap) : cap;
    }
    const start = query.from ?? encodeRoomToken(from);
    const page = await this.collect(access, from, query.dir, limit, to, query.filter);
    const response: MessagesResponse = { chunk: await this.serialize(page.rows, access), start };
    // Forwards with no `to`, reaching the newest event is not the end: later events follow it, so a
    // page that moved on gives the token to continue from. Only a page that moved nowhere has none.
    const openEnded = query.dir === 'f' && to === undefined && (page.cursor.depth !== from.depth || page.cursor.pos !== from.pos);
    if (!page.exhausted || openEnded) response.end = encodeRoomToken(page.cursor);
    if (query.filter?.lazy_load_members && page.rows.length > 0) {
      const at = page.rows[page.rows.length - 1]!;
      response.state = await this.serialize(await this.membersOf(Number(at.state_group), page.rows), access);
    }
    return response;
  }

  async context(requester: Requester, roomId: string, eventId: string, limit: number | undefined, filter: RoomEventFilter | undefined): Promise<ContextResponse> {
    const access = await this.access(roomId, requester);
    const row = await this.store.events.get(eventId);
    if (!row || row.room_id !== roomId || !this.readable(access, row)) throw notFound('Event not found');
    const total = Math.min(limit ?? DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT);
    const beforeLimit = Math.floor(total / 2);
    const afterLimit = total - beforeLimit;
    const cap = access.departed ? pointAfter(access.departed) : undefined;
    const before = await this.collect(access, pointBefore(row), 'b', beforeLimit, undefined, filter);
    const after = await this.collect(access, pointAfter(row), 'f', afterLimit, cap, filter);
    const last = after.rows[after.rows.length - 1] ?? row;
    const stateEntries = [...(await this.store.rooms.stateAt(Number(last.state_group))).values()];
    let stateRows = await this.rowsOf(stateEntries);
    if (filter?.lazy_load_members) {
      const senders = new Set([...before.rows, row, ...after.rows].map((r) => r.sender));
      stateRows = stateRows.filter((r) => r.type !== 'm.room.member' || senders.has(r.state_key ?? ''));
    }
    stateRows = applyEventFilter(stateRows, typesAndSenders(filter));
    const [event, eventsBefore, eventsAfter, state] = await Promise.all([
      this.serialize([row], access),
      this.serialize(before.rows, access),
      this.serialize(after.rows, access),
      this.serialize(stateRows, access),
    ]);
    return {
      event: event[0]!,
      events_before: eventsBefore,
      events_after: eventsAfter,
      start: encodeRoomToken(before.cursor),
      end: encodeRoomToken(after.cursor),
      state,
    };
  }

  /**
   * The events around one the access may read (a search result's context): up to `beforeLimit`
   * before it, newest first, and up to `afterLimit` after it (not past a departed user's leave), with
   * the tokens where paging on from them would start.
   */
  async around(access: Access, row: EventRow, beforeLimit: number, afterLimit: number): Promise<{ before: EventRow[]; after: EventRow[]; start: string; end: string }> {
    const cap = access.departed ? pointAfter(access.departed) : undefined;
    const before = await this.collect(access, pointBefore(row), 'b', beforeLimit, undefined, undefined);
    const after = await this.collect(access, pointAfter(row), 'f', afterLimit, cap, undefined);
    return { before: before.rows, after: after.rows, start: encodeRoomToken(before.cursor), end: encodeRoomToken(after.cursor) };
  }

  /**
   * GET /rooms/{roomId}/initialSync (old, still in the spec): the room's state (for a departed user,
   * as they left it), its latest `limit` events in order, the user's membership and the room's
   * directory visibility, and the user's account data of the room. Presence is the caller's to add.
   */
  async initialSync(requester: Requester, roomId: string, limit: number | undefined): Promise<RoomInitialSync> {
    const access = await this.access(roomId, requester);
    const [state, page, member] = await Promise.all([
      this.state(requester, roomId),
      this.messages(requester, roomId, { dir: 'b', limit }),
      this.store.rooms.member(roomId, requester.userId),
    ]);
    // With nothing earlier, `start` may be left out; it is given anyway (the room's beginning), as clients of this old API expect it.
    const messages: RoomInitialSync['messages'] = { chunk: page.chunk.reverse(), start: page.end ?? encodeRoomToken({ depth: 0, pos: 0 }), end: page.start };
    const accountData = (await this.store.accountData.changed(requester.userId, 0, Number.MAX_SAFE_INTEGER))
      .filter((entry) => entry.room_id === roomId)
      .map((entry) => ({ type: entry.type, content: JSON.parse(entry.content) as JsonObject }));
    const response: RoomInitialSync = { room_id: roomId, messages, state, visibility: Number(access.room.is_public) ? 'public' : 'private', account_data: accountData };
    if (member && Number(member.forgotten) === 0) response.membership = member.membership as Membership;
    return response;
  }

  /**
   * The room's member events: now (or, for a departed user, when they left), or at the point `at`
   * names. `membership` and `notMembership` together keep an event matching either, as the spec says.
   */
  async members(requester: Requester, roomId: string, options: { at?: string; membership?: Membership; notMembership?: Membership }): Promise<ClientEvent[]> {
    const access = await this.access(roomId, requester);
    let rows: EventRow[];
    if (options.at !== undefined || access.departed) {
      let point = options.at !== undefined ? await this.point(options.at, roomId) : pointAfter(access.departed!);
      if (access.departed) point = earlier(point, pointAfter(access.departed));
      const [atEvent] = await this.store.events.page(roomId, point, 'b', 1);
      rows = await this.rowsOf(atEvent ? [...(await this.store.rooms.stateAt(Number(atEvent.state_group), ['m.room.member'])).values()] : []);
    } else {
      // Current members: the events in one statement with the state, the rows from the event cache.
      rows = sortState(await this.store.events.currentState(roomId, 'm.room.member'));
    }
    const { membership, notMembership } = options;
    if (membership !== undefined || notMembership !== undefined) {
      rows = rows.filter((r) => (membership !== undefined && r.membership === membership) || (notMembership !== undefined && r.membership !== notMembership));
    }
    return this.serialize(rows, access);
  }

  async joinedMembers(requester: Requester, roomId: string): Promise<Record<string, { display_name?: string; avatar_url?: string }>> {
    const access = await this.access(roomId, requester);
    const joined: Record<string, { display_name?: string; avatar_url?: string }> = {};
    const add = (userId: string, displayname: unknown, avatarUrl: unknown) => {
      const profile: { display_name?: string; avatar_url?: string } = {};
      if (typeof displayname === 'string') profile.display_name = displayname;
      if (typeof avatarUrl === 'string') profile.avatar_url = avatarUrl;
      joined[userId] = profile;
    };
    if (access.departed) {
      const state = await this.store.rooms.stateAt(Number(access.departed.state_group), ['m.room.member']);
      const rows = (await this.rowsOf([...state.values()])).filter((r) => r.membership === 'join');
      for (const event of await this.serialize(rows, access)) add(event.state_key!, event.content.displayname, event.content.avatar_url);
    } else {
      for (const member of await this.store.rooms.members(roomId, ['join'])) add(member.user_id, member.displayname, member.avatar_url);
    }
    return joined;
  }

  /**
   * Who may read the room, and up to where. Unknown rooms answer as rooms the user is not in:
   * M_FORBIDDEN, so that room IDs cannot be probed.
   */
  async access(roomId: string, requester: Requester): Promise<Access> {
    const viewer: Viewer = { userId: requester.userId, deviceId: requester.deviceId };
    const [room, member] = await Promise.all([this.store.rooms.get(roomId), this.store.rooms.member(roomId, requester.userId)]);
    if (!room) throw forbidden('You are not in this room');
    const visibility = () => RoomVisibility.load(this.store.events, roomId, requester.userId);
    if (member?.membership === 'join') return { room, viewer, visibility: await visibility() };
    if (member && (member.membership === 'leave' || member.membership === 'ban') && Number(member.forgotten) === 0) {
      const departed = await this.store.events.get(member.event_id);
      if (departed) return { room, viewer, visibility: await visibility(), departed };
    }
    if ((await this.currentVisibility(roomId)) === 'world_readable') return { room, viewer, visibility: await visibility() };
    throw forbidden('You are not in this room');
  }

  private async currentVisibility(roomId: string): Promise<string> {
    const [entry] = await this.store.rooms.currentStateIds(roomId, [['m.room.history_visibility', '']]);
    const row = entry ? await this.store.events.get(entry.event_id) : undefined;
    let content: unknown;
    try {
      content = row ? (JSON.parse(row.pdu) as { content?: { history_visibility?: unknown } }).content?.history_visibility : undefined;
    } catch {
      content = undefined;
    }
    return historyVisibilityOf(content);
  }

  /** An event the access allows: not after a departed user's leave, and visible to them at the time. */
  readable(access: Access, row: EventRow): boolean {
    if (access.departed && compare(pointAfter(row), pointAfter(access.departed)) > 0) return false;
    return access.visibility.canSee(row);
  }

  async point(token: string, roomId: string): Promise<RoomPoint> {
    const point = await parseRoomToken(token, roomId, this.store.events);
    if (!point) throw invalidParam('Invalid pagination token');
    return point;
  }

  /**
   * Up to `limit` events from `from` in direction `dir` (bounded by `to`) that the viewer may see and
   * the filter keeps. Events left out still advance the page: `cursor` is where the next page starts,
   * and `exhausted` says the history in that direction (up to `to`) has been read to its end.
   */
  private async collect(access: Access, from: RoomPoint, dir: 'b' | 'f', limit: number, to: RoomPoint | undefined, filter: RoomEventFilter | undefined): Promise<Page> {
    const rows: EventRow[] = [];
    let cursor = from;
    const keep = filterPredicate(access.room.room_id, filter);
    for (let round = 0; round < MAX_ROUNDS && rows.length < limit; round++) {
      const batch = Math.min(MAX_PAGE_LIMIT, Math.max(2 * (limit - rows.length), 20));
      const page = await this.store.events.page(access.room.room_id, cursor, dir, batch, to);
      const accepted = new Set(applyEventFilter(access.visibility.filter(page), typesAndSenders(filter)).filter(keep));
      let examined = 0;
      for (const row of page) {
        examined++;
        cursor = dir === 'b' ? pointBefore(row) : pointAfter(row);
        if (accepted.has(row)) rows.push(row);
        if (rows.length === limit) break;
      }
      if (page.length < batch && examined === page.length) return { rows, cursor, exhausted: true };
    }
    return { rows, cursor, exhausted: false };
  }

  /** The member events, in the state group, of the senders of these events. */
  private async membersOf(group: number, events: readonly EventRow[]): Promise<EventRow[]> {
    const senders = new Set(events.map((e) => e.sender));
    const state = await this.store.rooms.stateAt(group, ['m.room.member']);
    return this.rowsOf([...state.values()].filter((e) => senders.has(e.state_key)));
  }

  /** The rows of state entries, in a stable order (type, then state key). */
  private async rowsOf(entries: readonly StateEntry[]): Promise<EventRow[]> {
    return sortState(await this.store.events.getMany(entries.map((e) => e.event_id)));
  }

  private serialize(rows: readonly EventRow[], access: Access): Promise<ClientEvent[]> {
    return this.serializer.serialize(rows, access.viewer, this.clock.now());
  }
}

/** The filter's type and sender rules, without its limit (which the page size takes). */
export function typesAndSenders(filter: RoomEventFilter | undefined) {
  if (!filter) return undefined;
  return { types: filter.types, not_types: filter.not_types, senders: filter.senders, not_senders: filter.not_senders };
}

/** The filter's room and contains_url rules. */
export function filterPredicate(roomId: string, filter: RoomEventFilter | undefined): (row: EventRow) => boolean {
  if (!filter) return () => true;
  if (filter.rooms && !filter.rooms.includes(roomId)) return () => false;
  if (filter.not_rooms?.includes(roomId)) return () => false;
  if (filter.contains_url === undefined) return () => true;
  const wanted = filter.contains_url;
  return (row) => hasUrl(row) === wanted;
}

function hasUrl(row: EventRow): boolean {
  if (row.redacted_by !== null) return false;
  try {
    const content = (JSON.parse(row.pdu) as { content?: JsonObject }).content;
    return content !== undefined && content !== null && typeof content === 'object' && 'url' in content;
  } catch {
    return false;
  }
}

/** State events in a stable order: type, then state key. */
function sortState(rows: EventRow[]): EventRow[] {
  return rows.sort((a, b) => (a.type === b.type ? ((a.state_key ?? '') < (b.state_key ?? '') ? -1 : 1) : a.type < b.type ? -1 : 1));
}

function compare(a: RoomPoint, b: RoomPoint): number {
  return a.depth !== b.depth ? a.depth - b.depth : a.pos - b.pos;
}

function earlier(a: RoomPoint, b: RoomPoint): RoomPoint {
  return compare(a, b) <= 0 ? a : b;
}
