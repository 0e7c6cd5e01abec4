/** Tables of the room directory and the user directory (migration 0016). */

/**
 * What the room directory and the user directory read of each room's current state, kept by the
 * room write path (one row per room, made by its m.room.create event).
 */
export interface RoomDirectoryTable {
  room_id: string;
  name: string | null;
  topic: string | null;
  canonical_alias: string | null;
  avatar_url: string | null;
  join_rule: string | null;
  history_visibility: string | null;
  guest_access: string | null;
  /** The `type` of m.room.create (e.g. m.space). */
  room_type: string | null;
  joined_members: number;
  /** Lower-cased copies of name, topic and canonical_alias (by JavaScript's rules, the same on both engines), for the directory's search. */
  name_lc: string | null;
  topic_lc: string | null;
  alias_lc: string | null;
}

/** The words a local user can be found by: of the localpart and of the display name, lower-cased. */
export interface UserDirectoryWordsTable {
  word: string;
  user_id: string;
}

export interface DirectoryTables {
  room_directory: RoomDirectoryTable;
  user_directory_words: UserDirectoryWordsTable;
}
