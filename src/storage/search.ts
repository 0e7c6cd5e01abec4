import { CompiledQuery, sql, type Kysely } from 'kysely';
import { anyOf } from './any-of.js';
import type { Engine } from './db.js';
import type { Database } from './schema.js';
import type { EventSearchTable } from './search-schema.js';
import { ftsQueryOf } from './search-query.js';

const INSERT_PG = 'INSERT INTO event_search (event_id, room_id, key, value) VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING';
const INSERT_SQLITE = 'INSERT INTO event_search (event_id, room_id, key, value) VALUES (?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING';

/** The keys /search looks in, and the event type each belongs to. */
export const SEARCH_KEYS = ['content.body', 'content.name', 'content.topic'] as const;
export type SearchKey = (typeof SEARCH_KEYS)[number];

const KEY_OF_TYPE: Readonly<Record<string, readonly [SearchKey, string]>> = {
  'm.room.message': ['content.body', 'body'],
  'm.room.name': ['content.name', 'name'],
  'm.room.topic': ['content.topic', 'topic'],
};

/** Highlight markers. Indexed text never holds them (they are blanked), so a marked word is a match. */
const START = '\u0001';
const END = '\u0002';
const PG_HEADLINE_OPTIONS = `StartSel=${START}, StopSel=${END}, MaxFragments=50`;

/** The index row of an event, when it has text to search: a string body, name or topic. */
export function searchEntryOf(event: { event_id: string; room_id: string; type: string; content: unknown }): EventSearchTable | undefined {
  const key = Object.hasOwn(KEY_OF_TYPE, event.type) ? KEY_OF_TYPE[event.type]! : undefined;
  if (!key || event.content === null || typeof event.content !== 'object') return undefined;
  const value = (event.content as Record<string, unknown>)[key[1]];
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  return { event_id: event.event_id, room_id: event.room_id, key: key[0], value: value.replaceAll(START, ' ').replaceAll(END, ' ') };
}

export interface SearchQuery {
  term: string;
  roomIds: readonly string[];
  keys: readonly SearchKey[];
  order: 'rank' | 'recent';
  /** `recent`: only events before this stream position. */
  before?: number;
  /** `rank`: matches skipped (those of the pages before). */
  offset?: number;
  limit: number;
}

export interface SearchHit {
  event_id: string;
  room_id: string;
  stream_pos: number;
  /** Higher is closer. */
  rank: number;
}

/**
 * The full-text index of room events: written in the event's transaction, its row deleted by the
 * event's redaction. SQLite searches with FTS5 (porter stemming over unicode61), PostgreSQL with
 * its `english` text search configuration and websearch_to_tsquery, as Synapse does.
 */
export class SearchRepo {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly engine: Engine,
  ) {}

  /** Runs a statement of insertStatement or deleteStatement. */
  async run(statement: CompiledQuery): Promise<void> {
    await this.db.executeQuery(statement);
  }

  /** The event is in the index: a statement, for run() or Store.deferToCommit. */
  insertStatement(entry: EventSearchTable): CompiledQuery {
    // Written out rather than built: every message comes through here.
    return CompiledQuery.raw(this.engine === 'postgres' ? INSERT_PG : INSERT_SQLITE, [entry.event_id, entry.room_id, entry.key, entry.value]);
  }

  /** The event is out of the index (it was redacted): a statement, for run() or Store.deferToCommit. */
  deleteStatement(eventId: string, roomId: string): CompiledQuery {
    return this.db.deleteFrom('event_search').where('event_id', '=', eventId).where('room_id', '=', roomId).compile();
  }

  /** A page of the matches in these rooms, best first (`rank`) or newest first (`recent`). */
  async search(q: SearchQuery): Promise<SearchHit[]> {
    if (q.roomIds.length === 0 || q.keys.length === 0) return [];
    const before = q.order === 'recent' && q.before !== undefined ? sql`AND e.stream_pos < ${q.before}` : sql``;
    const offset = q.order === 'rank' ? (q.offset ?? 0) : 0;
    let rows: { event_id: string; room_id: string; stream_pos: number | string; rank: number | string }[];
    if (this.engine === 'postgres') {
      const order = q.order === 'rank' ? sql`ORDER BY rank DESC, e.stream_pos DESC` : sql`ORDER BY e.stream_pos DESC`;
      rows = (
        await sql<(typeof rows)[number]>`
          SELECT s.event_id, s.room_id, e.stream_pos, ts_rank_cd(s.vector, q) AS rank
          FROM event_search s CROSS JOIN websearch_to_tsquery('english', ${q.term}) q
          JOIN events e ON e.event_id = s.event_id
          WHERE s.vector @@ q AND ${anyOf(this.engine, 's.room_id', q.roomIds)} AND ${anyOf(this.engine, 's.key', q.keys)} ${before}
          ${order} LIMIT ${q.limit} OFFSET ${offset}`.execute(this.db)
      ).rows;
    } else {
      const match = ftsQueryOf(q.term);
      if (match === undefined) return [];
      // bm25() is lower for better matches.
      const order = q.order === 'rank' ? sql`ORDER BY bm25(event_search_fts), e.stream_pos DESC` : sql`ORDER BY e.stream_pos DESC`;
      rows = (
        await sql<(typeof rows)[number]>`
          SELECT s.event_id, s.room_id, e.stream_pos, -bm25(event_search_fts) AS rank
          FROM event_search_fts JOIN event_search s ON s.id = event_search_fts.rowid
          JOIN events e ON e.event_id = s.event_id
          WHERE event_search_fts MATCH ${match} AND ${anyOf(this.engine, 's.room_id', q.roomIds)} AND ${anyOf(this.engine, 's.key', q.keys)} ${before}
          ${order} LIMIT ${q.limit} OFFSET ${offset}`.execute(this.db)
      ).rows;
    }
    return rows.map((r) => ({ event_id: r.event_id, room_id: r.room_id, stream_pos: Number(r.stream_pos), rank: Number(r.rank) }));
  }

  /** The words of these events' texts that match the term, lower-cased (stemming may have matched other forms than the term's). */
  async highlights(term: string, eventIds: readonly string[]): Promise<string[]> {
    if (eventIds.length === 0) return [];
    let marked: string[];
    if (this.engine === 'postgres') {
      marked = (
        await sql<{ h: string }>`
          SELECT ts_headline('english', value, websearch_to_tsquery('english', ${term}), ${PG_HEADLINE_OPTIONS}) AS h
          FROM event_search WHERE ${anyOf(this.engine, 'event_id', eventIds)}`.execute(this.db)
      ).rows.map((r) => r.h);
    } else {
      const match = ftsQueryOf(term);
      if (match === undefined) return [];
      marked = (
        await sql<{ h: string }>`
          SELECT highlight(event_search_fts, 0, ${START}, ${END}) AS h
          FROM event_search_fts JOIN event_search s ON s.id = event_search_fts.rowid
          WHERE event_search_fts MATCH ${match} AND ${anyOf(this.engine, 's.event_id', eventIds)}`.execute(this.db)
      ).rows.map((r) => r.h);
    }
    const words = new Set<string>();
    for (const text of marked) {
      // Each piece after a start marker holds a match up to its end marker.
      for (const piece of text.split(START).slice(1)) {
        const end = piece.indexOf(END);
        const word = (end === -1 ? '' : piece.slice(0, end)).trim().toLowerCase();
        if (word !== '') words.add(word);
      }
    }
    return [...words];
  }
}
