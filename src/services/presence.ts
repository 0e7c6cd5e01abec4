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
    // Presence is shared with users in common rooms; until rooms exist, that is only oneself.
    if (requesterId !== userId) throw forbidden('You are not allowed to see their presence.');
    const row = await this.store.presence.get(userId);
    return row ? this.view(row) : { presence: 'offline' };
  }

  /**
   * The m.presence events for a user's /sync: their own presence (room-mates' will come with rooms),
   * on an initial sync (`after` undefined) or when it changed in (after, upto].
   */
  async syncEvents(userId: string, after: number | undefined, upto: number): Promise<{ type: string; sender: string; content: JsonObject }[]> {
    return this.syncEventsOf(await this.store.presence.get(userId), userId, after, upto);
  }

  /** syncEvents, the user's presence row already read. */
  syncEventsOf(row: PresenceRow | undefined, userId: string, after: number | undefined, upto: number): { type: string; sender: string; content: JsonObject }[] {
    if (!row || row.stream_pos > upto || (after !== undefined && row.stream_pos <= after)) return [];
    return [{ type: 'm.presence', sender: userId, content: this.view(row) }];
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
    });
  }
}
