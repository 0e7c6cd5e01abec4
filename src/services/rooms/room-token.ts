import type { EventsRepo } from '../../storage/events.js';
import { parseSyncToken } from '../sync/sync-token.js';

/**
 * A point in a room's history, between two events: every event at or before it in topological
 * order (depth, then stream position) is "before" it. Paging backwards from a point returns the
 * events at or before it; forwards, those after it.
 */
export interface RoomPoint {
  depth: number;
  pos: number;
}

/** `t<depth>-<pos>`: the form of /messages tokens (and sync's prev_batch). */
export function encodeRoomToken(point: RoomPoint): string {
  return `t${point.depth}-${point.pos}`;
}

/** The point just before an event: where paging backwards from it resumes without it. */
export function pointBefore(event: { depth: number; stream_pos: number }): RoomPoint {
  return { depth: Number(event.depth), pos: Number(event.stream_pos) - 1 };
}

/** The point just after an event. */
export function pointAfter(event: { depth: number; stream_pos: number }): RoomPoint {
  return { depth: Number(event.depth), pos: Number(event.stream_pos) };
}

/** The (depth, position) a `t<depth>-<pos>` token names; undefined for any other string. */
export function parseTopologicalToken(token: string): RoomPoint | undefined {
  const topological = /^t(\d{1,15})-(\d{1,15})$/.exec(token);
  return topological ? { depth: Number(topological[1]), pos: Number(topological[2]) } : undefined;
}

/**
 * The point a token names in one room: a `t<depth>-<pos>` token, or a sync token (`next_batch`,
 * which the spec lets clients give as /messages `from` and /members `at`), taken as the room's
 * latest event at that stream position. Undefined when the string is no token of this server's.
 */
export async function parseRoomToken(token: string, roomId: string, events: EventsRepo): Promise<RoomPoint | undefined> {
  const topological = parseTopologicalToken(token);
  if (topological) return topological;
  const sync = parseSyncToken(token);
  if (!sync || sync.version !== 'm1') return undefined;
  return (await events.pointAt(roomId, sync.stream)) ?? { depth: 0, pos: 0 };
}
