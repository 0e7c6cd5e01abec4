import type { Clock } from '../../clock.js';
import type { Store } from '../../storage/index.js';
import type { SyncReceipt } from '../../storage/receipts.js';
import type { TypingRow } from '../../storage/typing.js';
import { dictionary, type JsonObject } from '../../validate.js';
import type { TypingService } from '../ephemeral/typing.js';
import { applyEventFilter, type Filter } from './filters.js';

type EphemeralFilter = NonNullable<NonNullable<Filter['room']>['ephemeral']>;

/** A joined room whose ephemeral events a sync asks for: `after` undefined for everything there is (an initial sync, a room just joined). */
export interface EphemeralRoom {
  roomId: string;
  after: number | undefined;
}

export interface EphemeralEvent {
  type: string;
  content: JsonObject;
}

const allows = (filter: EphemeralFilter | undefined, type: string) => applyEventFilter([{ type }], filter).length > 0;

/**
 * The `ephemeral` section of joined rooms: one m.receipt event per room (the newest receipt of each
 * user, type and thread; private ones only their owner's) and m.typing (who types now, for a room
 * whose typing changed). Both are on the global stream, so a room with nothing new since the token
 * costs nothing here; with no room changed since the token at all, no query runs.
 */
export class EphemeralSync {
  constructor(
    private readonly store: Store,
    private readonly typing: TypingService,
    private readonly clock: Clock,
  ) {}

  async read(userId: string, rooms: readonly EphemeralRoom[], upto: number, filter: EphemeralFilter | undefined): Promise<Map<string, EphemeralEvent[]>> {
    const wanted = rooms.filter((r) => (r.after === undefined || r.after < upto) && roomAllowed(filter, r.roomId));
    const out = new Map<string, EphemeralEvent[]>();
    if (wanted.length === 0) return out;
    // Rooms read from the same point go in the same statements: every room but those just joined, usually.
    const groups = new Map<number | undefined, string[]>();
    for (const r of wanted) groups.set(r.after, [...(groups.get(r.after) ?? []), r.roomId]);

    const events = new Map<string, EphemeralEvent[]>();
    const add = (roomId: string, event: EphemeralEvent) => events.set(roomId, [...(events.get(roomId) ?? []), event]);
    if (allows(filter, 'm.receipt')) {
      for (const [after, roomIds] of groups) {
        for (const [roomId, content] of receiptEvents(await this.store.receipts.visibleIn(roomIds, after ?? 0, upto, userId))) add(roomId, { type: 'm.receipt', content });
      }
    }
    if (allows(filter, 'm.typing')) {
      const now = this.clock.now();
      for (const [after, roomIds] of groups) {
        const full = after === undefined;
        // A full read needs only who types now: an empty window.
        const rows = await this.store.typing.forSync(roomIds, after ?? upto, upto, now);
        const changed = (r: TypingRow) => after !== undefined && Number(r.stream_pos) > after && Number(r.stream_pos) <= upto;
        for (const [roomId, userIds] of typingLists(rows, changed, full, now)) add(roomId, { type: 'm.typing', content: { user_ids: userIds } });
        // This process wakes the rooms' syncs when these typings run out, whoever set them.
        const next = Math.min(...rows.filter((r) => Number(r.typing) === 1 && Number(r.expires_ts) > now).map((r) => Number(r.expires_ts)));
        if (Number.isFinite(next)) this.typing.expectExpiry(next);
      }
    }
    for (const [roomId, list] of events) {
      const kept = applyEventFilter(list, filter);
      if (kept.length > 0) out.set(roomId, kept);
    }
    return out;
  }
}

function roomAllowed(filter: { rooms?: string[]; not_rooms?: string[] } | undefined, roomId: string): boolean {
  if (filter?.not_rooms?.includes(roomId)) return false;
  return !filter?.rooms || filter.rooms.includes(roomId);
}

/** m.receipt content by room: event ID -> receipt type -> user ID -> {ts, thread_id?}. */
function receiptEvents(rows: readonly SyncReceipt[]): Map<string, JsonObject> {
  const byRoom = new Map<string, JsonObject>();
  for (const r of rows) {
    let content = byRoom.get(r.room_id);
    if (!content) byRoom.set(r.room_id, (content = dictionary<unknown>()));
    const byType = (content[r.event_id] ??= dictionary<unknown>()) as JsonObject;
    const byUser = (byType[r.receipt_type] ??= dictionary<unknown>()) as JsonObject;
    byUser[r.user_id] = r.thread_id === '' ? { ts: Number(r.ts) } : { ts: Number(r.ts), thread_id: r.thread_id };
  }
  return byRoom;
}

/**
 * Who types now in each room that needs an m.typing: the rooms whose typing changed in the window
 * (the list may be empty: everyone stopped) and, on a full read, those where someone types.
 */
function typingLists(rows: readonly TypingRow[], changed: (row: TypingRow) => boolean, full: boolean, now: number): Map<string, string[]> {
  const lists = new Map<string, string[]>();
  for (const r of rows) if (changed(r) && !lists.has(r.room_id)) lists.set(r.room_id, []);
  for (const r of rows) {
    if (Number(r.typing) !== 1 || Number(r.expires_ts) <= now) continue;
    if (full && !lists.has(r.room_id)) lists.set(r.room_id, []);
    lists.get(r.room_id)?.push(r.user_id);
  }
  for (const list of lists.values()) list.sort();
  return lists;
}
