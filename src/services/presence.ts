import type { Clock } from '../clock.js';
import { badJson, forbidden, invalidParam, missingParam } from '../errors.js';
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

export function checkPresenceState(value: unknown, name: string): PresenceState {
  if (value === undefined || value === null) throw missingParam(name);
  if (typeof value !== 'string' || !(PRESENCE_STATES as readonly string[]).includes(value)) {
    throw invalidParam(`'${name}' must be one of ${PRESENCE_STATES.join(', ')}`);
  }
  return value as PresenceState;
}

/** Each user's own presence state and status message. */
export class PresenceService {
  private readonly lastTouch = new Map<string, { state: string; at: number }>();

  constructor(
    private readonly store: Store,
    private readonly writer: StreamWriter,
    private readonly clock: Clock,
  ) {}

  async set(requesterId: string, userId: string, body: JsonObject): Promise<void> {
    if (requesterId !== userId) throw forbidden('You cannot set the presence state of another user.');
    const state = checkPresenceState(body.presence, 'presence');
    const msg = body.status_msg;
    if (msg !== undefined && msg !== null && typeof msg !== 'string') throw badJson("'status_msg' must be a string");
    if (typeof msg === 'string' && msg.length > 1024) throw invalidParam("'status_msg' is too long");
    const now = this.clock.now();
    await this.write(userId, state, (msg as string | null | undefined) ?? null, now);
    this.lastTouch.set(userId, { state, at: now });
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
    const row = await this.store.presence.get(userId);
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
    if (last && last.state === state && now - last.at < TOUCH_INTERVAL_MS) return;
    if (this.lastTouch.size > 100_000) this.lastTouch.clear();
    this.lastTouch.set(userId, { state, at: now });
    await this.write(userId, state, undefined, now);
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
