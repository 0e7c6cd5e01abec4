/** The table of relations between events (migration 0018). */
export interface EventRelationsTable {
  /** The child: the event whose content has `m.relates_to`. */
  event_id: string;
  /** The parent it points at (which may be unknown, or in another room: readers check). */
  relates_to_id: string;
  rel_type: string;
  room_id: string;
  /** The child's event type, sender and position in its room. */
  type: string;
  sender: string;
  /** `m.relates_to.key` (annotations), when a string. */
  aggregation_key: string | null;
  depth: number;
  stream_pos: number;
}

export interface RelationTables {
  event_relations: EventRelationsTable;
}
