import type { Generated } from 'kysely';

/** Tables of reported content (migration 0021). Times are milliseconds since the epoch. */

/** A user's report of an event (POST /rooms/{roomId}/report/{eventId}), Synapse's event_reports. */
export interface EventReportsTable {
  id: Generated<number>;
  received_ts: number;
  room_id: string;
  event_id: string;
  /** Who reported it. */
  user_id: string;
  reason: string | null;
  /** -100 (most offensive) to 0, when the reporter gave one. */
  score: number | null;
  /** Who sent the reported event, kept with the report: it outlives a purge of the room. */
  sender: string;
}

/** A user's report of a room (POST /rooms/{roomId}/report). */
export interface RoomReportsTable {
  id: Generated<number>;
  received_ts: number;
  room_id: string;
  user_id: string;
  reason: string;
}

export interface ReportTables {
  event_reports: EventReportsTable;
  room_reports: RoomReportsTable;
}
