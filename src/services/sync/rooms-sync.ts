import { RoomVisibility } from '../rooms/visibility.js';
import type { AccountDataEntry } from '../../storage/account-data.js';
import type { EventRow } from '../../storage/events.js';
import type { Store } from '../../storage/index.js';
import { addCountRow, type RoomUnread } from '../../storage/push.js';
import { RoomSyncRepo, type MembershipRow, type StateEntry, type StateEventRef } from '../../storage/rooms-sync.js';
import { RoomMemberships, type MemberChange, type Memberships } from './room-memberships.js';
import { dictionary, isObject, type JsonObject } from '../../validate.js';
import type { ClientEvent, ClientEventSerializer } from '../rooms/client-event.js';
import { stateKeyOf, type Pdu } from '../rooms/pdu.js';
import { redactEvent } from '../rooms/redaction.js';
import { encodeRoomToken, pointBefore } from '../rooms/room-token.js';
import { compileGlob } from '../glob.js';
import { applyEventFilter, type EventFilter, type Filter } from './filters.js';
import type { LazyMembersCache } from './lazy-members.js';
import { encodeSyncToken } from './sync-token.js';
import type { EphemeralSync } from './ephemeral.js';

/** The timeline length when the filter sets none, and the most a filter may ask for. */
const DEFAULT_TIMELINE_LIMIT = 10;
const MAX_TIMELINE_LIMIT = 500;
/** How many batches of a room's history one sync reads looking for events its filters let through. */
const MAX_SCAN_ROUNDS = 4;
/** Heroes in a room summary. */
const HEROES = 5;
/** The state an invitee sees (Synapse's default `room_prejoin_state`), besides the invite itself and the inviter's member event. */
const INVITE_STATE_TYPES = ['m.room.create', 'm.room.join_rules', 'm.room.canonical_alias', 'm.room.avatar', 'm.room.encryption', 'm.room.name', 'm.room.topic'];

const MEMBER = 'm.room.member';
const pos = (row: { stream_pos: number }) => Number(row.stream_pos);

export interface RoomsSyncRequest {
  userId: string;
  deviceId: string;
  /** The position the client has everything up to; undefined for an initial sync. */
  after: number | undefined;
  upto: number;
  fullState: boolean;
  filter: Filter | undefined;
  /** The user's room account data changed in (after, upto] (all of it on an initial sync). */
  roomAccountData: readonly AccountDataEntry[];
  /** The user's membership rows as RoomSyncRepo.memberships reads them for this request, if already read. */
  memberships?: MembershipRow[];
}

export interface RoomsSyncResult {
  rooms: { join: JsonObject; invite: JsonObject; leave: JsonObject; knock: JsonObject };
  hasNews: boolean;
  /** Device-list changes that membership brought (incremental syncs only). */
  deviceLists: { changed: string[]; left: string[] };
}

/** One room of the join or leave section, on its way to the answer. */
interface RoomJob {
  roomId: string;
  section: 'join' | 'leave';
  /** `full`: all state at the start of the timeline; `incremental`: what changed since `since`. */
  mode: 'full' | 'incremental';
  /** The timeline is read from (after, cap]. */
  after: number;
  cap: number;
  row: MembershipRow;
  /** Whether anything happened in the room in (after, cap]; false when only account data changed. */
  changed: boolean;
  /** Events read, newest first, each either in the timeline or left out of it. */
  processed: EventRow[];
  timeline: EventRow[];
  limited: boolean;
  /** The scan reached `after`: every event in (after, cap] was looked at. */
  exhausted: boolean;
  /** The newest event at or before `cap`. */
  newest?: EventRow;
  /** For incremental rooms whose scan did not reach `after`: the state events in the gap. */
  gap: StateEventRef[];
  summary?: JsonObject;
  heroes: string[];
  state: Map<string, StateEntry>;
  /** State entries that must be sent whatever the client was sent before. */
  forced: Set<string>;
  /** No state at all: a room the user was only invited to, the invite rejected or withdrawn. */
  stateless: boolean;
}

function patternsOf(filter: EventFilter | undefined) {
  return {
    types: filter?.types?.map((p) => compileGlob(p, { questionMark: false })),
    notTypes: filter?.not_types?.map((p) => compileGlob(p, { questionMark: false })),
  };
}

type RoomFilter = EventFilter & {
  rooms?: string[];
  not_rooms?: string[];
  contains_url?: boolean;
  lazy_load_members?: boolean;
  include_redundant_members?: boolean;
  unread_thread_notifications?: boolean;
};

function roomAllowed(filter: { rooms?: string[]; not_rooms?: string[] } | undefined, roomId: string): boolean {
  if (!filter) return true;
  if (filter.not_rooms?.includes(roomId)) return false;
  return !filter.rooms || filter.rooms.includes(roomId);
}

/** An event filter as a predicate on stored events (type, sender, and `contains_url`). */
function eventPredicate(filter: RoomFilter | undefined): ((row: EventRow) => boolean) | undefined {
  if (!filter) return undefined;
  const { types, notTypes } = patternsOf(filter);
  const { senders, not_senders: notSenders, contains_url: containsUrl } = filter;
  if (!types && !notTypes && !senders && !notSenders && containsUrl === undefined) return undefined;
  return (row) => {
    if (notTypes?.some((m) => m(row.type))) return false;
    if (types && !types.some((m) => m(row.type))) return false;
    if (notSenders?.includes(row.sender)) return false;
    if (senders && !senders.includes(row.sender)) return false;
    if (containsUrl !== undefined) {
      const content = (JSON.parse(row.pdu) as { content?: unknown }).content;
      const hasUrl = isObject(content) && typeof content.url === 'string';
      if (hasUrl !== containsUrl) return false;
    }
    return true;
  };
}

/** A state group, and for a timeline that starts with a state event, that event's entry as it was before it. */
interface StartGroup {
  group: number;
  patch?: { key: string; type: string; stateKey: string; replaces: string | null };
}

/** Members whose events lazy-loading wants in a room's state: the timeline's senders and the heroes (and the user, for full state). */
function wantedMembers(j: RoomJob, userId: string): Set<string> {
  const wanted = new Set<string>();
  for (const r of j.timeline) wanted.add(r.sender);
  for (const h of j.heroes) wanted.add(h);
  if (j.mode === 'full') wanted.add(userId);
  return wanted;
}

/**
 * The rooms part of /sync: joined rooms (timeline, state, account data, summary), invites with
 * their stripped state, and rooms left since the last sync. Reads are batched over rooms: a
 * sync of a user in many rooms where one changed reads the unchanged ones in no per-room query.
 */
export class RoomsSync {
  readonly repo: RoomSyncRepo;
  readonly memberships: RoomMemberships;

  constructor(
    private readonly store: Store,
    private readonly serializer: ClientEventSerializer,
    private readonly lazyMembers: LazyMembersCache,
    private readonly now: () => number,
    /** Receipts and typing, for joined rooms' `ephemeral`; none without it. */
    private readonly ephemeral?: EphemeralSync,
  ) {
    this.repo = new RoomSyncRepo(store.db.kysely, store.events, store.db.engine);
    this.memberships = new RoomMemberships(store);
  }

  /** The rooms the user is joined to now: what a long-poll subscribes to before it first reads. */
  joinedRoomIds(userId: string): Promise<string[]> {
    return this.memberships.joinedRoomIds(userId);
  }

  async sync(request: RoomsSyncRequest): Promise<RoomsSyncResult> {
    const { userId, deviceId, after, upto, fullState, filter } = request;
    const roomFilter = filter?.room;
    const timelineFilter = roomFilter?.timeline as RoomFilter | undefined;
    const stateFilter = roomFilter?.state as RoomFilter | undefined;
    const lazy = stateFilter?.lazy_load_members === true;
    const includeRedundant = stateFilter?.include_redundant_members === true;
    const limit = Math.min(timelineFilter?.limit ?? DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT);
    const initial = after === undefined;
    const from = after ?? 0;
    if (lazy && initial) this.lazyMembers.clear(userId, deviceId);

    const memberships = await this.memberships.read(userId, after, upto, { allJoined: fullState, alsoRooms: [...new Set(request.roomAccountData.map((e) => e.room_id))], rows: request.memberships });
    const rooms = { join: dictionary<unknown>(), invite: dictionary<unknown>(), leave: dictionary<unknown>(), knock: dictionary<unknown>() };
    const inRooms = (roomId: string) => roomAllowed(roomFilter, roomId);

    // Room account data, by room.
    const accountData = new Map<string, { type: string; content: JsonObject }[]>();
    const accountDataFilter = roomFilter?.account_data as RoomFilter | undefined;
    for (const entry of request.roomAccountData) {
      if (!roomAllowed(accountDataFilter, entry.room_id)) continue;
      let list = accountData.get(entry.room_id);
      if (!list) accountData.set(entry.room_id, (list = []));
      list.push({ type: entry.type, content: JSON.parse(entry.content) as JsonObject });
    }
    for (const [roomId, list] of accountData) {
      const kept = applyEventFilter(list, accountDataFilter);
      if (kept.length > 0) accountData.set(roomId, kept);
      else accountData.delete(roomId);
    }

    // Receipts and typing: everything for rooms new to the client, else what changed since the token.
    // A room the account side read as having no receipt or typing since the token is left out.
    const ephemeralRooms = memberships.joined
      .filter((j) => inRooms(j.roomId) && (initial || !j.sinceJoined || j.row.ephemeral !== false))
      .map((j) => ({ roomId: j.roomId, after: initial || !j.sinceJoined ? undefined : from }));
    const ephemeral = this.ephemeral ? await this.ephemeral.read(userId, ephemeralRooms, upto, roomFilter?.ephemeral) : new Map<string, unknown[]>();

    // Which joined rooms changed: the membership rows carry each room's latest position (an
    // incremental read holds only rooms that changed, and those whose account data did).
    const stayed = memberships.joined.filter((j) => j.sinceJoined && !fullState && inRooms(j.roomId));
    const changed = new Set(stayed.filter((j) => pos({ stream_pos: j.row.last_pos }) > from).map((j) => j.roomId));
    // Unread counts change with an event of the room or a receipt, both of which bring the room into
    // the rows read; a room whose counts changed is sent even when the filters leave out that change.
    const unread = await this.unreadCounts(userId, memberships.joined.filter((j) => inRooms(j.roomId)).map((j) => j.row));
    const countsChanged = (roomId: string) => !initial && (unread.get(roomId)?.streamPos ?? 0) > from;
    const threadCounts = timelineFilter?.unread_thread_notifications === true;

    const jobs: RoomJob[] = [];
    const job = (roomId: string, section: 'join' | 'leave', mode: 'full' | 'incremental', jobAfter: number, cap: number, row: MembershipRow, roomChanged: boolean): RoomJob => ({
      roomId, section, mode, after: jobAfter, cap, row, changed: roomChanged,
      processed: [], timeline: [], limited: false, exhausted: true, gap: [], heroes: [], state: new Map(), forced: new Set(), stateless: false,
    });
    for (const j of memberships.joined) {
      if (!inRooms(j.roomId)) continue;
      if (initial) jobs.push(job(j.roomId, 'join', 'full', 0, upto, j.row, true));
      else if (!j.sinceJoined) jobs.push(job(j.roomId, 'join', 'full', 0, upto, j.row, true));
      else if (fullState) jobs.push(job(j.roomId, 'join', 'full', from, upto, j.row, true));
      else if (changed.has(j.roomId)) jobs.push(job(j.roomId, 'join', 'incremental', from, upto, j.row, true));
      else if (accountData.has(j.roomId) || ephemeral.has(j.roomId) || countsChanged(j.roomId)) jobs.push(job(j.roomId, 'join', 'incremental', from, upto, j.row, false));
    }
    for (const l of memberships.left) {
      if (!inRooms(l.roomId)) continue;
      if (initial && roomFilter?.include_leave !== true) continue;
      const incremental = !initial && l.sinceJoined;
      const left = job(l.roomId, 'leave', incremental ? 'incremental' : 'full', incremental ? from : 0, l.pos, l.row, true);
      // An invite rejected or withdrawn: the user's own member events (what visibility lets through), no state.
      left.stateless = !l.wasJoined;
      jobs.push(left);
    }

    await this.readTimelines(jobs, userId, limit, timelineFilter);
    await this.readGaps(jobs);
    await this.summaries(jobs.filter((j) => j.section === 'join' && this.needsSummary(j)), userId);
    await this.readState(jobs, { userId, deviceId, lazy, includeRedundant, initial });

    // Every event the answer holds, serialized in a few batches.
    const stateIds = new Set<string>();
    for (const j of jobs) for (const entry of j.state.values()) stateIds.add(entry.event_id);
    const stateRows = new Map((await this.store.events.getMany([...stateIds])).map((r) => [r.event_id, r]));
    // Bundled aggregations only in limited timelines, as the spec says: otherwise the client has the
    // children too, and would count them twice.
    const bundled = new Set(jobs.filter((j) => j.limited).flatMap((j) => j.timeline.map((r) => r.event_id)));
    const clientEvents = await this.serialize([...jobs.flatMap((j) => j.timeline), ...stateRows.values()], { userId, deviceId }, bundled);
    const stateAllowed = eventPredicate(stateFilter);
    const federationEvents = filter?.event_format === 'federation' ? await this.federationFormat([...jobs.flatMap((j) => j.timeline), ...stateRows.values()], clientEvents) : undefined;
    const present = (r: EventRow) => federationEvents?.get(r.event_id) ?? withoutRoomId(clientEvents.get(r.event_id)!);

    let hasNews = false;
    for (const j of jobs) {
      const timeline = j.timeline;
      const stateRowsOfRoom = roomAllowed(stateFilter, j.roomId)
        ? [...j.state.values()].map((e) => stateRows.get(e.event_id)).filter((r): r is EventRow => r !== undefined && (!stateAllowed || stateAllowed(r)))
        : [];
      stateRowsOfRoom.sort((a, b) => pos(a) - pos(b));
      if (lazy) for (const r of [...stateRowsOfRoom, ...timeline]) if (r.type === MEMBER && r.state_key !== null) this.lazyMembers.record(userId, deviceId, j.roomId, r.state_key, r.event_id);
      const first = timeline[0];
      const entry: JsonObject = {
        timeline: {
          events: timeline.map(present),
          limited: j.limited,
          prev_batch: first ? encodeRoomToken(pointBefore(first)) : encodeSyncToken(j.cap),
        },
        state: { events: stateRowsOfRoom.map(present) },
        account_data: { events: accountData.get(j.roomId) ?? [] },
      };
      accountData.delete(j.roomId);
      const ephemeralEvents = j.section === 'join' ? (ephemeral.get(j.roomId) ?? []) : [];
      const content = timeline.length > 0 || stateRowsOfRoom.length > 0 || (entry.account_data as { events: unknown[] }).events.length > 0 || ephemeralEvents.length > 0;
      if (j.section === 'join') {
        entry.ephemeral = { events: ephemeralEvents };
        const counts = unread.get(j.roomId);
        // With thread counts asked for, unread_notifications is the main timeline's alone.
        entry.unread_notifications = { ...((threadCounts ? counts?.main : counts?.total) ?? { highlight_count: 0, notification_count: 0 }) };
        if (threadCounts && counts && counts.threads.size > 0) entry.unread_thread_notifications = Object.fromEntries([...counts.threads].map(([id, n]) => [id, { ...n }]));
        if (j.summary) entry.summary = j.summary;
        // A summary alone does not bring a room into an incremental sync: the filters left out every
        // event that changed it (a display name change with member events filtered out changes no count).
        if (!content && j.mode === 'incremental' && !countsChanged(j.roomId)) continue;
        rooms.join[j.roomId] = entry;
      } else {
        rooms.leave[j.roomId] = entry;
      }
      hasNews = true;
    }

    for (const invite of await this.invites(memberships.invited.filter((i) => inRooms(i.roomId)), { userId, deviceId })) {
      rooms.invite[invite.roomId] = { invite_state: { events: invite.events } };
      hasNews = true;
    }

    let deviceLists: { changed: string[]; left: string[] } = { changed: [], left: [] };
    if (!initial) {
      // The window's member events of the rooms read above; the others are read there.
      const memberEvents = new Map<string, MemberChange[]>();
      if (!fullState) {
        for (const j of stayed) if (!changed.has(j.roomId)) memberEvents.set(j.roomId, []);
        for (const j of jobs) {
          if (j.section !== 'join' || j.mode !== 'incremental' || !j.changed) continue;
          const list: MemberChange[] = [...j.gap, ...j.processed.slice().reverse()].filter((e) => e.type === MEMBER && e.state_key !== null).map((e) => ({ state_key: e.state_key!, membership: e.membership }));
          memberEvents.set(j.roomId, list);
        }
      }
      deviceLists = await this.memberships.deviceListChanges(userId, from, upto, { memberships, memberEvents });
    }
    return { rooms, hasNews, deviceLists };
  }

  /** The user's unread counts in these rooms: from the rows where the account side read them, else from the database. */
  private async unreadCounts(userId: string, rows: readonly MembershipRow[]): Promise<Map<string, RoomUnread>> {
    const missing = rows.filter((r) => r.unread === undefined).map((r) => r.room_id);
    const counts = missing.length > 0 ? await this.store.push.counts(userId, missing) : new Map<string, RoomUnread>();
    for (const row of rows) for (const count of row.unread ?? []) addCountRow(counts, { ...count, room_id: row.room_id });
    return counts;
  }

  /** `bundled`: the events that get bundled aggregations (none unless given). */
  private async serialize(rows: EventRow[], viewer: { userId: string; deviceId: string }, bundled: ReadonlySet<string> = new Set()): Promise<Map<string, ClientEvent>> {
    const out = new Map<string, ClientEvent>();
    const now = this.now();
    const unique = [...new Map(rows.map((r) => [r.event_id, r])).values()];
    // The serializer reads transaction IDs for at most 500 events per call.
    for (let i = 0; i < unique.length; i += 400) {
      for (const event of await this.serializer.serialize(unique.slice(i, i + 400), viewer, now, bundled)) out.set(event.event_id, event);
    }
    return out;
  }

  /**
   * The filter's `event_format: federation`: each event as servers exchange it (its PDU, redacted if
   * it was, with `room_id`), plus its ID and the `unsigned` the client format gives it.
   */
  private async federationFormat(rows: EventRow[], clientEvents: Map<string, ClientEvent>): Promise<Map<string, JsonObject>> {
    const out = new Map<string, JsonObject>();
    for (const row of rows) {
      if (out.has(row.event_id)) continue;
      let pdu = this.store.events.parsed(row) as Pdu;
      if (row.redacted_by) pdu = redactEvent(pdu, await this.serializer.roomVersion(row.room_id));
      out.set(row.event_id, { ...(pdu as unknown as JsonObject), event_id: row.event_id, unsigned: clientEvents.get(row.event_id)!.unsigned });
    }
    return out;
  }

  /**
   * Reads each room's timeline backwards from its cap: the first batch of every room in one
   * statement, further batches (when filters or history visibility leave events out) per room.
   */
  private async readTimelines(jobs: RoomJob[], userId: string, limit: number, filter: RoomFilter | undefined): Promise<void> {
    const allowed = eventPredicate(filter);
    // A room the timeline filter leaves out has an empty timeline: its changes all go to `state`.
    for (const j of jobs) if (j.changed && !roomAllowed(filter, j.roomId)) j.exhausted = false;
    const scan = jobs.filter((j) => j.changed && roomAllowed(filter, j.roomId));
    const batch = allowed ? Math.min(3 * (limit + 1), 300) : limit + 1;
    // Once a first batch came back short of the limit (filters or history visibility left events out), larger ones.
    const further = Math.min(3 * (limit + 1), 300);
    const first = await this.repo.latestMany(scan.map((j) => ({ roomId: j.roomId, after: j.after, upto: j.cap, limit: batch })));
    for (const j of scan) {
      let rows = first.get(j.roomId) ?? [];
      let size = batch;
      const kept: EventRow[] = [];
      let visible: ((row: EventRow) => boolean) | undefined;
      j.newest = rows[0];
      for (let round = 1; ; round++) {
        if (rows.length > 0) visible ??= await this.visibility(j, userId, rows);
        let full = false;
        for (const row of rows) {
          j.processed.push(row);
          if ((!allowed || allowed(row)) && visible!(row)) kept.push(row);
          if (kept.length > limit) {
            full = true;
            break;
          }
        }
        if (full) {
          j.exhausted = false;
          j.limited = true;
          break;
        }
        if (rows.length < size) break;
        if (round >= MAX_SCAN_ROUNDS) {
          j.exhausted = false;
          j.limited = true;
          break;
        }
        const low = pos(rows[rows.length - 1]!);
        size = further;
        rows = await this.store.events.latest(j.roomId, j.after, low - 1, size);
        // History visibility may need more of the user's membership history for older events.
        if (rows.length > 0) visible = await this.visibility(j, userId, rows);
      }
      j.timeline = kept.slice(0, limit).reverse();
    }
  }

  /**
   * Which of a room's events the user may see (history visibility, as evaluated for the user's own
   * /sync: never peeking). Reads the user's membership history only when some event needs it.
   */
  private async visibility(j: RoomJob, userId: string, rows: EventRow[]): Promise<(row: EventRow) => boolean> {
    const joinedAt = j.section === 'join' ? pos(j.row) : Infinity;
    const restricted = (row: EventRow) => {
      if (pos(row) > joinedAt) return false;
      const values = [row.history_visibility];
      if (row.type === 'm.room.history_visibility' && row.state_key === '') values.push(historyVisibilityOf(row));
      if (values.includes('world_readable')) return false;
      // Joined rooms: the user joined after any earlier event, so `shared` history is theirs.
      return j.section === 'leave' || values.every((v) => v === 'joined' || v === 'invited');
    };
    if (!rows.some(restricted)) return () => true;
    const oldest = pos(rows[rows.length - 1]!);
    const chain = (await this.memberships.chains(new Map([[j.roomId, j.row.event_id]]), oldest - 1)).get(j.roomId) ?? [];
    // The chain reaches back past the oldest row, so the rules see the membership before each row.
    const rules = new RoomVisibility(userId, chain.filter((e) => pos(e) <= j.cap));
    // State events still in the room's current state always: a joined member reads that state anyway
    // (GET /state), and a client that missed it from the timeline would show the room wrong (as
    // Synapse serves them, for matrix-ios-sdk issue 341).
    const hiddenState = j.section === 'join' ? rows.filter((r) => r.state_key !== null && restricted(r)) : [];
    const current = new Set(hiddenState.length === 0 ? [] : (await this.store.rooms.currentStateIds(j.roomId, hiddenState.map((r) => [r.type, r.state_key!] as const))).map((c) => c.event_id));
    // The user's own member events always (as Synapse serves them): a rejected invite or a kick must
    // reach the client, or the room never leaves its list.
    return (row) => !restricted(row) || (row.type === MEMBER && row.state_key === userId) || current.has(row.event_id) || rules.canSee(row);
  }

  /** For incremental rooms whose timeline does not reach back to `since`: the state events in the gap. */
  private async readGaps(jobs: RoomJob[]): Promise<void> {
    for (const j of jobs) {
      if (j.mode !== 'incremental' || j.exhausted || !j.changed) continue;
      const low = j.processed.length > 0 ? pos(j.processed[j.processed.length - 1]!) : j.cap + 1;
      j.gap = await this.repo.stateEventsBetween(j.roomId, j.after, low);
    }
  }

  private needsSummary(j: RoomJob): boolean {
    if (j.mode === 'full') return true;
    return j.processed.some((r) => r.type === MEMBER) || j.gap.some((e) => e.type === MEMBER);
  }

  /** m.heroes and the member counts of these rooms, in three statements for all of them. */
  private async summaries(jobs: RoomJob[], userId: string): Promise<void> {
    if (jobs.length === 0) return;
    const ids = jobs.map((j) => j.roomId);
    const counts = await this.repo.memberCounts(ids);
    // Heroes only for rooms without a name or canonical alias (the spec requires them only there), so
    // that lazy-loading sends no member events for them in named rooms either.
    const named = await this.repo.namedRooms(ids);
    const unnamed = ids.filter((id) => !named.has(id));
    const heroes = unnamed.length > 0 ? await this.repo.heroes(unnamed, userId, ['join', 'invite'], HEROES) : new Map<string, string[]>();
    const lonely = unnamed.filter((id) => !heroes.has(id));
    const formerHeroes = lonely.length > 0 ? await this.repo.heroes(lonely, userId, ['leave', 'ban'], HEROES) : new Map<string, string[]>();
    for (const j of jobs) {
      const c = counts.get(j.roomId)!;
      j.summary = { 'm.joined_member_count': c.joined, 'm.invited_member_count': c.invited };
      if (named.has(j.roomId)) continue;
      j.heroes = heroes.get(j.roomId) ?? formerHeroes.get(j.roomId) ?? [];
      j.summary['m.heroes'] = j.heroes;
    }
  }

  /**
   * The state section of each room: for `full` rooms the state at the start of the timeline; for
   * `incremental` ones what changed between `since` and the start of the timeline. State events
   * the timeline filter left out are sent as state, so that the client's state stays right. With
   * lazy-loading, member events only for the timeline's senders (and heroes, and the user on a
   * join or full state), less those the device was already sent, but always those of a gap.
   */
  private async readState(jobs: RoomJob[], o: { userId: string; deviceId: string; lazy: boolean; includeRedundant: boolean; initial: boolean }): Promise<void> {
    // The full rooms' state at the start of their timelines: read for all of them at once.
    const starts = new Map<RoomJob, StartGroup>();
    for (const j of jobs) {
      if (j.stateless || j.mode !== 'full') continue;
      const start = await this.startGroup(j);
      if (start) starts.set(j, start);
    }
    const fullJobs = [...starts.keys()];
    const snapshots = await this.repo.stateAtMany(
      fullJobs.map((j) => ({ group: starts.get(j)!.group, select: o.lazy ? { others: true, members: [...wantedMembers(j, o.userId)] } : { others: true, members: 'all' as const } })),
    );
    const snapshotOf = new Map(fullJobs.map((j, i) => [j, snapshots[i]!]));

    for (const j of jobs) {
      if (j.stateless) continue;
      const timelineIds = new Set(j.timeline.map((r) => r.event_id));
      const excluded = j.processed.filter((r) => r.state_key !== null && !timelineIds.has(r.event_id)).reverse();
      const startPos = j.timeline[0] ? pos(j.timeline[0]) : j.cap + 1;
      const lastInTimeline = new Map<string, number>();
      for (const r of j.timeline) if (r.state_key !== null) lastInTimeline.set(stateKeyOf(r.type, r.state_key), pos(r));
      const overriddenLater = (e: { type: string; state_key: string; stream_pos: number }) => (lastInTimeline.get(stateKeyOf(e.type, e.state_key)) ?? -1) > e.stream_pos;

      const wanted = o.lazy ? wantedMembers(j, o.userId) : new Set<string>();

      if (j.mode === 'full') {
        const start = starts.get(j);
        const state = snapshotOf.get(j);
        if (start === undefined || state === undefined) continue;
        if (start.patch) {
          const selected = !o.lazy || start.patch.type !== MEMBER || wanted.has(start.patch.stateKey);
          if (selected) {
            if (start.patch.replaces) state.set(start.patch.key, { type: start.patch.type, state_key: start.patch.stateKey, event_id: start.patch.replaces });
            else state.delete(start.patch.key);
          }
        }
        for (const r of excluded) {
          if (pos(r) <= startPos || overriddenLater({ type: r.type, state_key: r.state_key!, stream_pos: pos(r) })) continue;
          state.set(stateKeyOf(r.type, r.state_key!), { type: r.type, state_key: r.state_key!, event_id: r.event_id });
          j.forced.add(r.event_id);
        }
        if (o.lazy && !o.includeRedundant && !o.initial) {
          for (const [k, e] of state) {
            if (e.type !== MEMBER || e.state_key === o.userId || j.forced.has(e.event_id)) continue;
            if (this.lazyMembers.sent(o.userId, o.deviceId, j.roomId, e.state_key) === e.event_id) state.delete(k);
          }
        }
        j.state = state;
        continue;
      }

      // Incremental: the last change of each key between `since` and the start of the timeline.
      const candidates = new Map<string, StateEventRef>();
      for (const e of [...j.gap, ...excluded.map((r) => ({ type: r.type, state_key: r.state_key!, event_id: r.event_id, stream_pos: pos(r), membership: r.membership }))].sort((a, b) => a.stream_pos - b.stream_pos)) {
        candidates.set(stateKeyOf(e.type, e.state_key), e);
      }
      for (const [k, e] of candidates) {
        if (e.stream_pos > startPos && overriddenLater(e)) continue;
        j.state.set(k, { type: e.type, state_key: e.state_key, event_id: e.event_id });
        // A gap's member events go out even if redundant (the spec's MUST); so do the others here.
        j.forced.add(e.event_id);
      }
      if (!o.lazy) continue;
      const missing = [...wanted].filter((u) => !candidates.has(stateKeyOf(MEMBER, u)) && (o.includeRedundant || this.lazyMembers.sent(o.userId, o.deviceId, j.roomId, u) === undefined));
      // A remembered member event is what the client has; it changed only if a newer one is in the window.
      if (missing.length === 0) continue;
      const start = await this.startGroup(j);
      if (start === undefined) continue;
      const members = await this.repo.stateAt(start.group, { others: false, members: missing });
      if (start.patch?.type === MEMBER && missing.includes(start.patch.stateKey)) {
        if (start.patch.replaces) members.set(start.patch.key, { type: MEMBER, state_key: start.patch.stateKey, event_id: start.patch.replaces });
        else members.delete(start.patch.key);
      }
      for (const [k, e] of members) if (!j.state.has(k)) j.state.set(k, e);
    }
  }

  /**
   * The state group at the start of a room's timeline: the group after the event before it. For a
   * timeline starting with a state event E, that is E's group with E's entry replaced by what E replaced.
   */
  private async startGroup(j: RoomJob): Promise<StartGroup | undefined> {
    const first = j.timeline[0];
    if (first) {
      if (first.state_key === null) return { group: Number(first.state_group) };
      return { group: Number(first.state_group), patch: { key: stateKeyOf(first.type, first.state_key), type: first.type, stateKey: first.state_key, replaces: first.replaces_state } };
    }
    const newest = j.newest ?? (await this.store.events.latest(j.roomId, 0, j.cap, 1))[0];
    return newest ? { group: Number(newest.state_group) } : undefined;
  }

  /** Each invite's stripped state: the state the invitee may see before joining, and the invite itself. */
  private async invites(invites: Memberships['invited'], viewer: { userId: string; deviceId: string }): Promise<{ roomId: string; events: JsonObject[] }[]> {
    if (invites.length === 0) return [];
    const inviteRows = new Map((await this.store.events.getMany(invites.map((i) => i.eventId))).map((r) => [r.event_id, r]));
    const states = new Map<string, string[]>();
    for (const invite of invites) {
      const row = inviteRows.get(invite.eventId);
      if (!row) continue;
      const state = [...(await this.store.rooms.stateAt(Number(row.state_group), INVITE_STATE_TYPES)).values()];
      // And the inviter's member event: clients show who invited them by it.
      if (row.sender !== viewer.userId) state.push(...(await this.repo.stateAt(Number(row.state_group), { others: false, members: [row.sender] })).values());
      states.set(invite.roomId, state.map((e) => e.event_id));
    }
    const rows = await this.store.events.getMany([...states.values()].flat());
    const events = await this.serialize([...rows, ...inviteRows.values()], viewer);
    const out: { roomId: string; events: JsonObject[] }[] = [];
    for (const invite of invites) {
      const own = events.get(invite.eventId);
      if (!own) continue;
      const stripped: JsonObject[] = [];
      for (const id of states.get(invite.roomId) ?? []) {
        const e = events.get(id);
        if (e) stripped.push({ type: e.type, state_key: e.state_key ?? '', content: e.content, sender: e.sender });
      }
      stripped.push(withoutRoomId(own));
      out.push({ roomId: invite.roomId, events: stripped });
    }
    return out;
  }
}

function historyVisibilityOf(row: EventRow): string {
  const content = (JSON.parse(row.pdu) as { content?: { history_visibility?: unknown } }).content;
  return typeof content?.history_visibility === 'string' ? content.history_visibility : 'shared';
}

/** Sync's events leave out `room_id` (ClientEventWithoutRoomID): the room is the key they sit under. */
function withoutRoomId(event: ClientEvent): JsonObject {
  const { room_id: _roomId, ...rest } = event;
  return rest;
}
