import type { Clock } from '../clock.js';
import { forbidden } from '../errors.js';
import type { Store } from '../storage/index.js';
import type { PresenceRow } from '../storage/presence.js';
import type { JsonObject } from '../validate.js';
import type { StreamWriter } from './sync/stream-writer.js';

export const PRESENCE_STATES = ['online', 'offline', 'unavailable'] as const;
export type PresenceState = (typeof PRESENCE_STATES)[number];

/** How long after its last activity a user still counts as currently active. */
const ACTIVE_MS = 5 * 60_000;
/** A syncing client refreshes its presence at most this often. */
const TOUCH_INTERVAL_MS = 60_000;

/** A PUT /presence/{userId}/status request. */
export interface PresenceUpdate {
  presence: PresenceState;
  /** Absent (or null) clears the status message. */
  status_msg?: string;
}

/** Each user's own presence state and status message. */
export class PresenceService {
  private readonly lastTouch = new Map<string, { state: string; at: number; written: Promise<void> }>();

  constructor(
    private readonly store: Store,
    private readonly writer: StreamWriter,
    private readonly clock: Clock,
  ) {}

  async set(requesterId: string, userId: string, update: PresenceUpdate): Promise<void> {
    if (requesterId !== userId) throw forbidden('You cannot set the presence state of another user.');
    const state = update.presence;
    const now = this.clock.now();
    await this.write(userId, state, update.status_msg ?? null, now);
    this.lastTouch.set(userId, { state, at: now, written: Promise.resolve() });
  }

  async get(requesterId: string, userId: string): Promise<JsonObject> {
    // Presence is shared with the users one shares a room with.
    if (requesterId !== userId && !(await this.store.rooms.roomMates(requesterId)).includes(userId)) throw forbidden('You are not allowed to see their presence.');
    const row = await this.store.presence.get(userId);
    return row ? this.view(row) : { presence: 'offline' };
  }

  /** The m.presence events of these users (offline for those who never had a presence). */
  async eventsOf(userIds: readonly string[]): Promise<{ type: string; sender: string; content: JsonObject }[]> {
    const found = new Map((await this.store.presence.getMany(userIds)).map((row) => [row.user_id, row]));
    return userIds.map((u) => {
      const row = found.get(u);
      return { type: 'm.presence', sender: u, content: row ? this.view(row) : { presence: 'offline' } };
    });
  }

  /**
   * The m.presence events for a user's /sync: their own and their room-mates', on an initial sync
   * (`after` undefined) or those changed in (after, upto]; and the current presence of `newMates`,
   * the users they newly share a room with.
   */
  async syncEvents(userId: string, after: number | undefined, upto: number, newMates: readonly string[] = []): Promise<{ type: string; sender: string; content: JsonObject }[]> {
    return this.syncEventsOf(await this.store.presence.get(userId), userId, after, upto, newMates);
  }

  /** syncEvents, the user's own presence row already read. */
  async syncEventsOf(
    own: PresenceRow | undefined,
    userId: string,
    after: number | undefined,
    upto: number,
    newMates: readonly string[] = [],
    /** The room-mates' presence changed after `after`, already read (up to a head at or past `upto`). */
    matesChanged?: readonly PresenceRow[],
  ): Promise<{ type: string; sender: string; content: JsonObject }[]> {
    const rows = new Map<string, PresenceRow>();
    if (own && own.stream_pos <= upto && (after === undefined || own.stream_pos > after)) rows.set(userId, own);
    const mates = matesChanged ? matesChanged.filter((r) => r.stream_pos <= upto) : await this.store.presence.roomMatesChanged(userId, after, upto);
    for (const row of mates) rows.set(row.user_id, row);
    const events = [...rows.values()].map((row) => ({ type: 'm.presence', sender: row.user_id, content: this.view(row) }));
    if (after === undefined) return events;
    // A new room-mate's presence comes once whatever its age; never having had one, they are offline.
    const fresh = newMates.filter((u) => !rows.has(u));
    const found = new Map((await this.store.presence.getMany(fresh)).map((row) => [row.user_id, row]));
    for (const mate of fresh) {
      const row = found.get(mate);
      if (row && row.stream_pos > upto) continue;
      events.push({ type: 'm.presence', sender: mate, content: row ? this.view(row) : { presence: 'offline' } });
    }
    return events;
  }

  private view(row: PresenceRow): JsonObject {
    const ago = Math.max(0, this.clock.now() - row.last_active_ts);
    const view: JsonObject = { presence: row.state, last_active_ago: ago, currently_active: row.state === 'online' && ago < ACTIVE_MS };
    if (row.status_msg !== null) view.status_msg = row.status_msg;
    return view;
  }

  /** Marks a syncing user online or idle (set_presence), writing at most once a minute per user. */
  async touch(userId: string, state: PresenceState): Promise<void> {
    if (state === 'offline') return;
    const now = this.clock.now();
    const last = this.lastTouch.get(userId);
    // Another sync of this user may be writing the same presence right now: wait for it, so that this
    // sync's answer (and its next_batch) already holds the change, as the writing sync's does.
    if (last && last.state === state && now - last.at < TOUCH_INTERVAL_MS) return last.written;
    if (this.lastTouch.size > 100_000) this.lastTouch.clear();
    const written = this.write(userId, state, undefined, now);
    this.lastTouch.set(userId, { state, at: now, written: written.catch(() => undefined) });
    await written;
  }

  /**
   * Stores a presence; a change of state or status message takes a stream position, so that syncs
   * deliver it and waiting ones wake. A mere refresh of the last activity does not.
   */
  private async write(userId: string, state: PresenceState, statusMsg: string | null | undefined, now: number): Promise<void> {
    await this.writer.write(async (tx) => {
      const old = await tx.store.presence.get(userId);
      const changed = !old || old.state !== state || (statusMsg !== undefined && old.status_msg !== statusMsg);
      await tx.store.presence.set(userId, state, statusMsg, now, changed ? await tx.position(userId) : undefined);
      // Room-mates' syncs deliver the change too, and so does whoever peeks into one of the user's
      // rooms (GET /events with room_id): all of them listen on those rooms, so waking the rooms wakes them.
      if (changed) for (const roomId of await tx.store.rooms.joinedRooms(userId)) await tx.roomPosition(roomId);
    });
  }
}
