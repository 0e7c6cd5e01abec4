import type { Clock } from '../../clock.js';
import { invalidParam, MatrixError } from '../../errors.js';
import type { EventRow } from '../../storage/events.js';
import type { Store } from '../../storage/index.js';
import type { SearchHit, SearchKey, SearchQuery } from '../../storage/search.js';
import type { Requester } from '../devices.js';
import { applyEventFilter } from '../sync/filters.js';
import type { ClientEvent, ClientEventSerializer } from './client-event.js';
import { filterPredicate, typesAndSenders, type Access, type RoomEventFilter, type RoomReadService } from './room-reads.js';
import { encodeSearchToken, parseSearchToken, type SearchCursor } from './search-token.js';

export const DEFAULT_SEARCH_LIMIT = 10;
/** The most results one page holds, whatever the filter's limit. */
export const MAX_SEARCH_LIMIT = 100;
export const DEFAULT_CONTEXT_LIMIT = 5;
export const MAX_CONTEXT_LIMIT = 100;
/** Index reads to fill one page when visibility or the filter leaves matches out. */
const MAX_ROUNDS = 5;
/** Matches examined for `count` (newest first): beyond them the count is a lower bound, as the spec allows ("approximate"). */
const COUNT_SCAN = 1000;

export interface RoomEventsCriteria {
  search_term: string;
  keys: SearchKey[];
  order_by: 'rank' | 'recent';
  filter?: RoomEventFilter;
  event_context?: { before_limit: number; after_limit: number; include_profile: boolean };
  include_state: boolean;
  group_by: ('room_id' | 'sender')[];
}

interface Profile {
  displayname?: string;
  avatar_url?: string;
}

interface Context {
  events_before: ClientEvent[];
  events_after: ClientEvent[];
  start: string;
  end: string;
  profile_info?: Record<string, Profile>;
}

interface Group {
  results: string[];
  order: number;
  next_batch?: string;
}

export interface RoomEventsResults {
  results: { rank: number; result: ClientEvent; context?: Context }[];
  count: number;
  highlights: string[];
  next_batch?: string;
  groups?: Partial<Record<'room_id' | 'sender', Record<string, Group>>>;
  state?: Record<string, ClientEvent[]>;
}

interface Found {
  row: EventRow;
  rank: number;
  access: Access;
}

/**
 * Server-side search of room events (POST /search): over the rooms the user is in or has left
 * (not forgotten), and in them only the events the user may read, as /messages and /context decide
 * (history visibility, and nothing after a leave). The index holds message bodies, room names and
 * topics; redacted events are out of it.
 */
export class SearchService {
  constructor(
    private readonly store: Store,
    private readonly reads: RoomReadService,
    private readonly serializer: ClientEventSerializer,
    private readonly clock: Clock,
  ) {}

  async roomEvents(requester: Requester, criteria: RoomEventsCriteria, nextBatch: string | undefined): Promise<RoomEventsResults> {
    const cursor: SearchCursor = nextBatch !== undefined ? parseSearchToken(nextBatch) : { order: criteria.order_by, position: criteria.order_by === 'rank' ? 0 : Number.MAX_SAFE_INTEGER };
    if (cursor.order !== criteria.order_by) throw invalidParam('next_batch was given for another order_by');
    const filter = criteria.filter;
    const limit = Math.min(filter?.limit ?? DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT);
    let roomIds = (await this.store.rooms.roomsOf(requester.userId, ['join', 'leave', 'ban'])).map((m) => m.room_id);
    if (filter?.rooms) roomIds = roomIds.filter((id) => filter.rooms!.includes(id));
    if (filter?.not_rooms) roomIds = roomIds.filter((id) => !filter.not_rooms!.includes(id));
    if (cursor.room !== undefined) roomIds = roomIds.filter((id) => id === cursor.room);

    const accepts = this.acceptor(requester, filter);
    const query = { term: criteria.search_term, roomIds, keys: criteria.keys, order: criteria.order_by };
    const found: Found[] = [];
    let position = cursor.position;
    // Per room, the matches examined: where a rank search narrowed to that room goes on (its
    // matches keep their relative order, the scores being the same).
    const examinedIn = new Map<string, number>();
    let exhausted = false;
    for (let round = 0; round < MAX_ROUNDS && found.length < limit && !exhausted; round++) {
      const batch = Math.max(2 * (limit - found.length), 20);
      const hits = await this.store.search.search({ ...query, before: position, offset: position, limit: batch });
      const rows = await this.rowsOf(hits);
      let examined = 0;
      for (const hit of hits) {
        examined++;
        position = criteria.order_by === 'rank' ? position + 1 : hit.stream_pos;
        examinedIn.set(hit.room_id, (examinedIn.get(hit.room_id) ?? 0) + 1);
        const row = rows.get(hit.event_id);
        const access = row ? await accepts(row) : undefined;
        if (row && access) found.push({ row, rank: hit.rank, access });
        if (found.length === limit) break;
      }
      exhausted = hits.length < batch && examined === hits.length;
    }

    // A first page that examined every match has counted them all.
    const count = exhausted && nextBatch === undefined ? found.length : await this.count(query, accepts);

    const now = this.clock.now();
    const viewer = { userId: requester.userId, deviceId: requester.deviceId };
    const events = await this.serializer.serialize(found.map((f) => f.row), viewer, now);
    const contexts = criteria.event_context ? await Promise.all(found.map((f) => this.context(f, criteria.event_context!))) : undefined;
    const response: RoomEventsResults = {
      results: found.map((f, i) => ({ rank: f.rank, result: events[i]!, ...(contexts ? { context: contexts[i]! } : {}) })),
      count,
      highlights: await this.store.search.highlights(criteria.search_term, found.map((f) => f.row.event_id)),
    };
    if (!exhausted) response.next_batch = encodeSearchToken({ order: criteria.order_by, position, ...(cursor.room !== undefined ? { room: cursor.room } : {}) });
    // A room's group goes on in that room: from the global position (recent), or past the room's
    // matches examined so far (rank), known on a first page and on a page narrowed to the room.
    const rankFrom = (room: string) => (cursor.room === room ? cursor.position : cursor.position === 0 ? 0 : undefined);
    const roomNext = (room: string) => {
      if (exhausted) return undefined;
      if (criteria.order_by === 'recent') return encodeSearchToken({ order: 'recent', position, room });
      const from = rankFrom(room);
      return from === undefined ? undefined : encodeSearchToken({ order: 'rank', position: from + (examinedIn.get(room) ?? 0), room });
    };
    if (criteria.group_by.length > 0) response.groups = groupsOf(found, criteria.group_by, roomNext);
    if (criteria.include_state) {
      response.state = {};
      for (const roomId of new Set(found.map((f) => f.row.room_id))) response.state[roomId] = await this.reads.state(requester, roomId);
    }
    return response;
  }

  /**
   * Whether the user may read a matched event and the filter keeps it: the room's access (read once
   * per room) for a match the user may see, else undefined.
   */
  private acceptor(requester: Requester, filter: RoomEventFilter | undefined): (row: EventRow) => Promise<Access | undefined> {
    const accesses = new Map<string, Promise<Access | undefined>>();
    const rules = typesAndSenders(filter);
    return async (row) => {
      let access = accesses.get(row.room_id);
      if (!access) {
        access = this.reads.access(row.room_id, requester).catch((err: unknown) => {
          if (err instanceof MatrixError && err.errcode === 'M_FORBIDDEN') return undefined;
          throw err;
        });
        accesses.set(row.room_id, access);
      }
      const granted = await access;
      if (!granted || row.redacted_by !== null || !this.reads.readable(granted, row)) return undefined;
      if (applyEventFilter([row], rules).length === 0 || !filterPredicate(row.room_id, filter)(row)) return undefined;
      return granted;
    };
  }

  /** The matches the user may read among the newest COUNT_SCAN. */
  private async count(query: Omit<SearchQuery, 'limit'>, accepts: (row: EventRow) => Promise<Access | undefined>): Promise<number> {
    const hits = await this.store.search.search({ ...query, order: 'recent', limit: COUNT_SCAN });
    const rows = await this.rowsOf(hits);
    let count = 0;
    for (const hit of hits) {
      const row = rows.get(hit.event_id);
      if (row && (await accepts(row))) count++;
    }
    return count;
  }

  private async rowsOf(hits: readonly SearchHit[]): Promise<Map<string, EventRow>> {
    return new Map((await this.store.events.getMany(hits.map((h) => h.event_id))).map((r) => [r.event_id, r]));
  }

  private async context(found: Found, options: NonNullable<RoomEventsCriteria['event_context']>): Promise<Context> {
    const { access, row } = found;
    const around = await this.reads.around(access, row, options.before_limit, options.after_limit);
    const now = this.clock.now();
    const [before, after] = await Promise.all([this.serializer.serialize(around.before, access.viewer, now), this.serializer.serialize(around.after, access.viewer, now)]);
    const context: Context = { events_before: before, events_after: after, start: around.start, end: around.end };
    if (options.include_profile) {
      const senders = new Set([...around.before, row, ...around.after].map((r) => r.sender));
      const last = around.after.at(-1) ?? row;
      context.profile_info = await this.profilesAt(Number(last.state_group), senders);
    }
    return context;
  }

  /** The senders' display names and avatars in a state group (their member events there), as the spec's profile_info. */
  private async profilesAt(group: number, senders: ReadonlySet<string>): Promise<Record<string, Profile>> {
    const state = await this.store.rooms.stateAt(group, ['m.room.member']);
    const ids = [...state.values()].filter((e) => senders.has(e.state_key)).map((e) => e.event_id);
    const profiles: Record<string, Profile> = {};
    for (const member of await this.store.events.getMany(ids)) {
      const profile: Profile = {};
      if (member.redacted_by === null) {
        const content = (this.store.events.parsed(member) as { content?: Record<string, unknown> }).content ?? {};
        if (typeof content.displayname === 'string') profile.displayname = content.displayname;
        if (typeof content.avatar_url === 'string' && content.avatar_url.startsWith('mxc://')) profile.avatar_url = content.avatar_url;
      }
      profiles[member.state_key!] = profile;
    }
    return profiles;
  }
}

/**
 * The results grouped by room and by sender, each group's `order` the place of its first result in
 * the list. A room's group has its own next_batch (the search narrowed to that room) when the
 * results go on and where the room's results go on is known.
 */
function groupsOf(found: readonly Found[], groupBy: RoomEventsCriteria['group_by'], roomNext: (room: string) => string | undefined): NonNullable<RoomEventsResults['groups']> {
  const groups: NonNullable<RoomEventsResults['groups']> = {};
  for (const key of groupBy) {
    const byValue: Record<string, Group> = {};
    found.forEach((f, i) => {
      const value = key === 'room_id' ? f.row.room_id : f.row.sender;
      (byValue[value] ??= { results: [], order: i + 1 }).results.push(f.row.event_id);
    });
    if (key === 'room_id') {
      for (const [roomId, group] of Object.entries(byValue)) {
        const next = roomNext(roomId);
        if (next !== undefined) group.next_batch = next;
      }
    }
    groups[key] = byValue;
  }
  return groups;
}
