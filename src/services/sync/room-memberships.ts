import type { EventRow } from '../../storage/events.js';
import type { Store } from '../../storage/index.js';
import { RoomSyncRepo, type MembershipRow } from '../../storage/rooms-sync.js';

/** The longest chain of one user's member events followed back in one room. */
const MAX_CHAIN = 200;

const pos = (row: { stream_pos: number }) => Number(row.stream_pos);

/** What the user's memberships say about each room between `after` and `upto`. */
export interface Memberships {
  /**
   * Rooms joined at `upto`; `sinceJoined` when the user was joined at `after` too, without leaving
   * between. On an incremental read only those that changed (see `read`).
   */
  joined: { roomId: string; row: MembershipRow; sinceJoined: boolean }[];
  /** Invites: the invite event. */
  invited: { roomId: string; eventId: string; pos: number }[];
  /**
   * Rooms left (or banned from): the leave (or ban) event; `sinceJoined` as above; `wasJoined` when
   * the user was joined at `after` or since (false for an invite rejected or withdrawn).
   */
  left: { roomId: string; row: MembershipRow; eventId: string; pos: number; sinceJoined: boolean; wasJoined: boolean }[];
}

/** A member event: whose membership became what. */
export interface MemberChange {
  state_key: string;
  membership: string | null;
}

/** Events of a member chain (one user's member events in one room), newest first. */
export type Chain = EventRow[];

/**
 * A user's memberships as sync sees them: which rooms were joined, invited to or left between two
 * stream positions, and the device-list changes that sharing rooms brings. Stateless; reads only.
 */
export class RoomMemberships {
  readonly repo: RoomSyncRepo;

  constructor(private readonly store: Store) {
    this.repo = new RoomSyncRepo(store.db.kysely, store.events, store.db.engine);
  }

  /** The rooms the user is joined to now: what a long-poll subscribes to before it first reads. */
  joinedRoomIds(userId: string): Promise<string[]> {
    return this.repo.joinedRoomIds(userId);
  }

  /**
   * Follows each room's chain of the user's member events back from `starts` (an event ID per
   * room), each until an event at or before `until` (included), in one read per step for all rooms.
   */
  async chains(starts: Map<string, string>, until: number): Promise<Map<string, Chain>> {
    const chains = new Map<string, Chain>();
    let pending = new Map(starts);
    for (let step = 0; pending.size > 0 && step < MAX_CHAIN; step++) {
      const rows = new Map((await this.store.events.getMany([...pending.values()])).map((r) => [r.event_id, r]));
      const next = new Map<string, string>();
      for (const [roomId, eventId] of pending) {
        const row = rows.get(eventId);
        if (!row) continue;
        let chain = chains.get(roomId);
        if (!chain) chains.set(roomId, (chain = []));
        chain.push(row);
        if (pos(row) > until && row.replaces_state) next.set(roomId, row.replaces_state);
      }
      pending = next;
    }
    return chains;
  }

  /**
   * What the user's memberships did between `after` (undefined: from the start) and `upto`. An
   * incremental read gives the joined rooms where nothing happened since `after` only with
   * `allJoined` (full_state) or if `alsoRooms` names them (rooms whose account data changed).
   */
  async read(userId: string, after: number | undefined, upto: number, options: { allJoined?: boolean; alsoRooms?: readonly string[]; rows?: MembershipRow[] } = {}): Promise<Memberships> {
    const alsoRooms = options.alsoRooms ?? [];
    // `rows`: those repo.memberships would read, already read (with the rest of the sync's account side).
    const rows = options.rows ? [...options.rows] : await this.repo.memberships(userId, after, options.allJoined);
    if (after !== undefined && alsoRooms.length > 0) {
      const read = new Set(rows.map((r) => r.room_id));
      const missing = alsoRooms.filter((id) => !read.has(id));
      if (missing.length > 0) rows.push(...(await this.repo.membershipsIn(userId, missing)));
    }
    // Rows changed after `after` (on an initial sync: after `upto`, a change racing this sync) are followed back.
    const threshold = after ?? upto;
    const walk = new Map<string, string>();
    for (const row of rows) if (pos(row) > threshold) walk.set(row.room_id, row.event_id);
    const chains = walk.size > 0 ? await this.chains(walk, threshold) : new Map<string, Chain>();
    const result: Memberships = { joined: [], invited: [], left: [] };
    const asEvent = (row: MembershipRow) => ({ eventId: row.event_id, pos: pos(row) });
    for (const row of rows) {
      const chain = chains.get(row.room_id);
      if (after === undefined) {
        const atUpto = chain ? chain.find((e) => pos(e) <= upto) : undefined;
        if (chain && !atUpto) continue;
        const membership = atUpto ? atUpto.membership : row.membership;
        const event = atUpto ? { eventId: atUpto.event_id, pos: pos(atUpto) } : asEvent(row);
        if (membership === 'join') result.joined.push({ roomId: row.room_id, row, sinceJoined: false });
        else if (membership === 'invite') result.invited.push({ roomId: row.room_id, ...event });
        else if ((membership === 'leave' || membership === 'ban') && !row.forgotten) result.left.push({ roomId: row.room_id, row, ...event, sinceJoined: false, wasJoined: true });
        continue;
      }
      if (!chain) {
        // Unchanged since `after`: the query returns such rows only for joined rooms.
        if (row.membership === 'join') result.joined.push({ roomId: row.room_id, row, sinceJoined: true });
        continue;
      }
      const atSince = chain.find((e) => pos(e) <= after);
      const inWindow = chain.filter((e) => pos(e) > after && pos(e) <= upto);
      const atUpto = inWindow[0];
      if (!atUpto) {
        // Every change is after `upto`, racing this sync: as it was at `since`.
        if (atSince?.membership === 'join') result.joined.push({ roomId: row.room_id, row, sinceJoined: true });
        continue;
      }
      const earlier = inWindow.slice(1);
      const sinceJoined = atSince?.membership === 'join' && earlier.every((e) => e.membership === 'join');
      const event = { eventId: atUpto.event_id, pos: pos(atUpto) };
      if (atUpto.membership === 'join') result.joined.push({ roomId: row.room_id, row, sinceJoined });
      else if (atUpto.membership === 'invite') result.invited.push({ roomId: row.room_id, ...event });
      else if ((atUpto.membership === 'leave' || atUpto.membership === 'ban') && !row.forgotten) {
        // Shown when the user was in the room, or invited to it, at `since` or since.
        const wasIn = [atSince, ...earlier].some((e) => e?.membership === 'join' || e?.membership === 'invite');
        const wasJoined = [atSince, ...earlier].some((e) => e?.membership === 'join');
        if (wasIn) result.left.push({ roomId: row.room_id, row, ...event, sinceJoined, wasJoined });
      }
    }
    return result;
  }

  /**
   * Device-list changes that come from sharing rooms: users who came to share a room with the
   * user in (after, upto] are `changed`; those who no longer share any are `left`. `memberEvents`
   * holds the member events of the window for the rooms a sync has already read.
   */
  async deviceListChanges(userId: string, after: number, upto: number, known?: { memberships: Memberships; memberEvents: Map<string, MemberChange[]> }): Promise<{ changed: string[]; left: string[] }> {
    const memberships = known?.memberships ?? (await this.read(userId, after, upto));
    const joinCandidates = new Set<string>();
    const leaveCandidates = new Set<string>();
    const newlyJoined = memberships.joined.filter((j) => !j.sinceJoined).map((j) => j.roomId);
    if (newlyJoined.length > 0) for (const u of await this.repo.joinedMembers(newlyJoined)) joinCandidates.add(u);
    const left = memberships.left.map((l) => l.roomId);
    if (left.length > 0) for (const u of await this.repo.joinedMembers(left)) leaveCandidates.add(u);
    const events: MemberChange[] = [];
    const changedRooms: string[] = [];
    for (const j of memberships.joined) {
      if (!j.sinceJoined) continue;
      const list = known?.memberEvents.get(j.roomId);
      if (list) events.push(...list);
      else if (pos({ stream_pos: j.row.last_pos }) > after) changedRooms.push(j.roomId);
    }
    if (changedRooms.length > 0) events.push(...(await this.repo.memberEventsBetween(changedRooms, after, upto)));
    for (const e of events) {
      if (e.membership === 'join') joinCandidates.add(e.state_key);
      else if (e.membership === 'leave' || e.membership === 'ban') leaveCandidates.add(e.state_key);
    }
    joinCandidates.delete(userId);
    leaveCandidates.delete(userId);
    if (joinCandidates.size === 0 && leaveCandidates.size === 0) return { changed: [], left: [] };
    const mates = new Set(await this.store.rooms.roomMates(userId));
    return {
      changed: [...joinCandidates].filter((u) => mates.has(u)),
      left: [...leaveCandidates].filter((u) => !mates.has(u)),
    };
  }
}
