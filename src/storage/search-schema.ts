/** The full-text index of room events (migration 0020). */

/**
 * One searchable text of one event: `content.body` of m.room.message, `content.name` of
 * m.room.name, `content.topic` of m.room.topic. The engine's own index lives beside it: on SQLite
 * the FTS5 table `event_search_fts` (external content, kept by triggers, joined on `id`), on
 * PostgreSQL the generated column `vector` with its GIN index.
 */
export interface EventSearchTable {
  event_id: string;
  room_id: string;
  key: string;
  value: string;
}

export interface SearchTables {
  event_search: EventSearchTable;
}
