/** Tables of the admin API (migration 0012). Times are milliseconds since the epoch. */

/** A registration token (MSC3231), with Synapse's fields. */
export interface RegistrationTokensTable {
  token: string;
  /** How many registrations it may complete; null for no limit. */
  uses_allowed: number | null;
  /** Registrations that passed the token stage and have not completed yet (their UIA session still open). */
  pending: number;
  /** Registrations it completed. */
  completed: number;
  /** The last moment the token is valid; null for never expiring. */
  expiry_time: number | null;
  created_ts: number;
}

/** The pending use of a token by one registration's UIA session (at most one per session). */
export interface RegistrationTokenUsesTable {
  session_id: string;
  token: string;
  created_ts: number;
}

/** Rooms no one may join, blocked by an admin (Synapse's blocked_rooms). */
export interface BlockedRoomsTable {
  room_id: string;
  /** The admin who blocked it. */
  user_id: string;
  created_ts: number;
}

export interface AdminTables {
  registration_tokens: RegistrationTokensTable;
  registration_token_uses: RegistrationTokenUsesTable;
  blocked_rooms: BlockedRoomsTable;
}
