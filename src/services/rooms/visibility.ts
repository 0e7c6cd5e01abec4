import type { EventRow, EventsRepo } from '../../storage/events.js';
import { DEFAULT_HISTORY_VISIBILITY } from './event-creator.js';

/** The four settings of m.room.history_visibility. */
export type HistoryVisibility = 'world_readable' | 'shared' | 'invited' | 'joined';

const SETTINGS: readonly string[] = ['world_readable', 'shared', 'invited', 'joined'];

/** A setting as the spec reads it: anything absent or not understood is `shared`. */
export function historyVisibilityOf(value: unknown): HistoryVisibility {
  return typeof value === 'string' && SETTINGS.includes(value) ? (value as HistoryVisibility) : (DEFAULT_HISTORY_VISIBILITY as HistoryVisibility);
}

/** One of the viewer's member events: where their membership changed, and to what. */
export interface MembershipChange {
  stream_pos: number;
  membership: string | null;
}

/** What visibility needs of an event row. */
export type VisibilityRow = Pick<EventRow, 'stream_pos' | 'type' | 'state_key' | 'membership' | 'history_visibility' | 'pdu'>;

/**
 * Which events of one room a viewer may see (the spec's "Room History Visibility", server
 * behaviour), from the visibility in force at each event (stored on the event) and the viewer's
 * membership at it (from their member events, loaded once). Per event, with the state before it:
 *   1. world_readable: allowed;
 *   2. the viewer's membership was join: allowed;
 *   3. shared, and the viewer joined at some point after the event: allowed;
 *   4. the viewer's membership was invite and the setting invited: allowed;
 *   5. otherwise denied.
 * An m.room.history_visibility event is visible if the setting before or after it allows it, and the
 * viewer's own member events if their membership before or after allows it.
 */
export class RoomVisibility {
  /** Stream position of the viewer's latest join; -1 when they never joined. */
  private readonly lastJoin: number;
  private readonly changes: MembershipChange[];

  constructor(
    readonly viewer: string | undefined,
    history: readonly MembershipChange[],
  ) {
    this.changes = [...history].map((c) => ({ stream_pos: Number(c.stream_pos), membership: c.membership })).sort((a, b) => a.stream_pos - b.stream_pos);
    this.lastJoin = this.changes.reduce((last, c) => (c.membership === 'join' ? c.stream_pos : last), -1);
  }

  /** The viewer's history in the room: one query, whatever the number of events checked. */
  static async load(events: EventsRepo, roomId: string, viewer: string | undefined): Promise<RoomVisibility> {
    return new RoomVisibility(viewer, viewer === undefined ? [] : await events.membershipHistory(roomId, viewer));
  }

  /** The viewer's membership just before stream position `pos` (undefined when they had none). */
  membershipBefore(pos: number): string | undefined {
    let low = 0;
    let high = this.changes.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.changes[mid]!.stream_pos < pos) low = mid + 1;
      else high = mid;
    }
    return low === 0 ? undefined : (this.changes[low - 1]!.membership ?? undefined);
  }

  canSee(row: VisibilityRow): boolean {
    const pos = Number(row.stream_pos);
    const before = historyVisibilityOf(row.history_visibility);
    const settings: HistoryVisibility[] = [before];
    if (row.type === 'm.room.history_visibility' && row.state_key === '') {
      const after = historyVisibilityOf(contentOf(row).history_visibility);
      if (after !== before) settings.push(after);
    }
    const memberships: (string | undefined)[] = [this.membershipBefore(pos)];
    if (row.type === 'm.room.member' && this.viewer !== undefined && row.state_key === this.viewer) memberships.push(row.membership ?? undefined);
    return settings.some((setting) => memberships.some((membership) => this.allows(setting, membership, pos)));
  }

  filter<T extends VisibilityRow>(rows: readonly T[]): T[] {
    return rows.filter((row) => this.canSee(row));
  }

  private allows(setting: HistoryVisibility, membership: string | undefined, pos: number): boolean {
    if (setting === 'world_readable') return true;
    if (membership === 'join') return true;
    if (setting === 'shared' && this.lastJoin > pos) return true;
    return setting === 'invited' && membership === 'invite';
  }
}

function contentOf(row: Pick<EventRow, 'pdu'>): Record<string, unknown> {
  try {
    const content = (JSON.parse(row.pdu) as { content?: unknown }).content;
    return content !== null && typeof content === 'object' ? (content as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
