import type { RoomRow } from '../../storage/rooms.js';
import type { StateKey, StoredEvent } from './pdu.js';

/**
 * What a room's writer knew when its transaction committed: the room's head (depth, state group,
 * latest position), its forward extremity, and the current state events it had read or written
 * (null where it found none).
 */
export interface RoomHead {
  depth: number;
  stateGroup: number;
  lastPos: number;
  extremity: string | undefined;
  state: ReadonlyMap<StateKey, StoredEvent | null>;
  historyVisibility: string | undefined;
  hops: number | undefined;
}

/** Rooms whose heads this process keeps. */
const MAX_ROOMS = 10_000;
/** State entries per room beyond which a head is not kept (a huge room reads its state again). */
const MAX_STATE_ENTRIES = 20_000;

/**
 * The heads of recently written rooms, so that the next write of a room reads neither its state
 * nor its forward extremity from the database. A head is used only while the room's row, read
 * under the room's lock, still shows the same depth, state group and latest position: every event
 * of a room, written by any process, moves its depth, so a head this process did not write is
 * never mistaken for the current one. Heads are kept only after their transaction committed.
 */
export class RoomHeadCache {
  private readonly heads = new Map<string, RoomHead>();

  constructor(private readonly maxRooms = MAX_ROOMS) {}

  /** The room's head when it is still the one its locked row shows. */
  get(room: RoomRow): RoomHead | undefined {
    const head = this.heads.get(room.room_id);
    if (!head) return undefined;
    return head.depth === Number(room.depth) && head.stateGroup === Number(room.state_group) && head.lastPos === Number(room.last_pos) ? head : undefined;
  }

  /** Keeps a committed write's head, unless a later write of the room (greater depth) already left its own. */
  set(roomId: string, head: RoomHead): void {
    const kept = this.heads.get(roomId);
    if (kept && kept.depth > head.depth) return;
    this.heads.delete(roomId);
    if (head.state.size > MAX_STATE_ENTRIES) return;
    this.heads.set(roomId, head);
    // Map order is insertion order: the first key is the room written longest ago.
    if (this.heads.size > this.maxRooms) this.heads.delete(this.heads.keys().next().value!);
  }

  /** Forgets a room (e.g. one purged). */
  delete(roomId: string): void {
    this.heads.delete(roomId);
  }
}
