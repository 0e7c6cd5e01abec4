/** Read receipts and typing notifications (migration 0015). */

export interface ReceiptsTable {
  room_id: string;
  /** m.read or m.read.private (m.fully_read is room account data). */
  receipt_type: string;
  user_id: string;
  /** '' for an unthreaded receipt; else `main` or a thread root's event ID. */
  thread_id: string;
  event_id: string;
  /** The stream position of the event the receipt points at: receipts only move forwards. */
  event_pos: number;
  ts: number;
  /** The position of the receipt itself in the global stream. */
  stream_pos: number;
}

export interface RoomTypingTable {
  room_id: string;
  user_id: string;
  /** 1 while typing until expires_ts; 0 once stopped or expired (kept so that syncs see the change). */
  typing: number;
  expires_ts: number;
  /** The position of the latest change of this user's typing in this room. */
  stream_pos: number;
}

export interface EphemeralTables {
  receipts: ReceiptsTable;
  room_typing: RoomTypingTable;
}
