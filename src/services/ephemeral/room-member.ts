import { forbidden, notFound } from '../../errors.js';
import type { EventRow } from '../../storage/events.js';
import type { Store } from '../../storage/index.js';
import type { MemberRow } from '../../storage/rooms.js';
import { RoomVisibility } from '../rooms/visibility.js';

/**
 * The user's membership row, when they are joined. An unknown room answers as a room the user is not
 * in (M_FORBIDDEN), as the room reads do, so that room IDs cannot be probed.
 */
export async function requireJoined(store: Store, roomId: string, userId: string): Promise<MemberRow> {
  const member = await store.rooms.member(roomId, userId);
  if (member?.membership !== 'join') throw forbidden(`${userId} is not joined to this room`);
  return member;
}

/**
 * An event of the room that the joined user may see; M_NOT_FOUND for an unknown event, one of another
 * room, or one history visibility hides from them (as GET /event answers). Events since their join,
 * and `shared` or `world_readable` ones, need no look at their membership history.
 */
export async function visibleEvent(store: Store, member: MemberRow, eventId: string): Promise<EventRow> {
  const row = await store.events.get(eventId);
  if (!row || row.room_id !== member.room_id || Number(row.outlier) !== 0) throw notFound('Event not found');
  if (Number(row.stream_pos) >= Number(member.stream_pos) || row.history_visibility === 'shared' || row.history_visibility === 'world_readable') return row;
  const visibility = await RoomVisibility.load(store.events, member.room_id, member.user_id);
  if (!visibility.canSee(row)) throw notFound('Event not found');
  return row;
}
