/** Profile changes on their way into the user's rooms (migration 0023). */

export interface ProfilePropagationsTable {
  user_id: string;
  /** Raised by each profile change: a worker that finds it moved starts the rooms over. */
  generation: number;
  /** The rooms done so far, in room ID order: those up to this one. Null: none yet. */
  last_room_id: string | null;
  /** Until when a process works on it (0: nobody); after that, any process takes it up. */
  leased_until: number;
}

export interface ProfileTables {
  profile_propagations: ProfilePropagationsTable;
}
