import { sql, type Kysely, type RawBuilder } from 'kysely';
import { anyOf } from './any-of.js';
import type { Engine } from './db.js';
import type { EventRelationsTable } from './relations-schema.js';
import type { Database } from './schema.js';

export type RelationRow = EventRelationsTable;

/** A point in a room's history (depth, stream position), as /messages tokens name them. */
export interface Point {
  depth: number;
  pos: number;
}

export interface ChildrenQuery {
  parentId: string;
  roomId: string;
  relType?: string;
  eventType?: string;
  dir: 'b' | 'f';
  /** Backwards: children at or before it; forwards: after it. */
  from?: Point;
  /** Backwards: children after it; forwards: at or before it. */
  to?: Point;
  limit: number;
  /** 1 for direct children only; more follows children of children that far. */
  depth: number;
}

/** A parent's children of one relation type, summed up (what the `m.thread` bundle needs). */
export interface RelationSummary {
  relates_to_id: string;
  room_id: string;
  rel_type: string;
  count: number;
  /** For `m.thread`: the thread's latest event. */
  latest_event_id: string | null;
  /** Whether `viewer` sent one of the children. */
  participated: boolean;
}

/** A thread in a room's thread list: its root and where its latest event is. */
export interface ThreadEntry {
  root_id: string;
  latest_depth: number;
  latest_pos: number;
}

/** IDs per IN (...) list on SQLite; PostgreSQL takes one array parameter. */
const CHUNK = 500;

/** Relations between events: written with the child, deleted with its redaction, read for /relations, /threads and bundles. */
export class RelationsRepo {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly engine: Engine,
  ) {}

  async insert(row: RelationRow): Promise<void> {
    await this.db.insertInto('event_relations').values(row).onConflict((oc) => oc.column('event_id').doNothing()).execute();
  }

  /** The child's relation is gone (it was redacted). */
  async delete(eventId: string, roomId: string): Promise<void> {
    await this.db.deleteFrom('event_relations').where('event_id', '=', eventId).where('room_id', '=', roomId).execute();
  }

  /** Whether `sender` already annotated the parent with an event of this type and key (one not redacted). */
  async hasAnnotation(parentId: string, type: string, key: string, sender: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('event_relations')
      .select('event_id')
      .where('relates_to_id', '=', parentId)
      .where('rel_type', '=', 'm.annotation')
      .where('type', '=', type)
      .where('aggregation_key', '=', key)
      .where('sender', '=', sender)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  async relationOf(eventId: string): Promise<RelationRow | undefined> {
    return this.db.selectFrom('event_relations').selectAll().where('event_id', '=', eventId).executeTakeFirst();
  }

  /**
   * A page of a parent's children in the room, in topological order (newest first backwards,
   * oldest first forwards), filtered by relation and event type, through `depth` levels of relations
   * (a level's filters apply to the events it passes through, as the spec says).
   */
  async children(q: ChildrenQuery): Promise<Pick<RelationRow, 'event_id' | 'depth' | 'stream_pos'>[]> {
    const filters = (alias: string): RawBuilder<unknown>[] => {
      const out: RawBuilder<unknown>[] = [sql`${sql.ref(`${alias}.room_id`)} = ${q.roomId}`];
      if (q.relType !== undefined) out.push(sql`${sql.ref(`${alias}.rel_type`)} = ${q.relType}`);
      if (q.eventType !== undefined) out.push(sql`${sql.ref(`${alias}.type`)} = ${q.eventType}`);
      return out;
    };
    const bounds: RawBuilder<unknown>[] = [];
    if (q.dir === 'b') {
      if (q.from) bounds.push(sql`(r.depth, r.stream_pos) <= (${q.from.depth}, ${q.from.pos})`);
      if (q.to) bounds.push(sql`(r.depth, r.stream_pos) > (${q.to.depth}, ${q.to.pos})`);
    } else {
      if (q.from) bounds.push(sql`(r.depth, r.stream_pos) > (${q.from.depth}, ${q.from.pos})`);
      if (q.to) bounds.push(sql`(r.depth, r.stream_pos) <= (${q.to.depth}, ${q.to.pos})`);
    }
    const order = q.dir === 'b' ? sql`ORDER BY r.depth DESC, r.stream_pos DESC` : sql`ORDER BY r.depth ASC, r.stream_pos ASC`;
    const and = (parts: RawBuilder<unknown>[]) => sql.join(parts, sql` AND `);
    let query: RawBuilder<Pick<RelationRow, 'event_id' | 'depth' | 'stream_pos'>>;
    if (q.depth <= 1) {
      query = sql`SELECT r.event_id, r.depth, r.stream_pos FROM event_relations r
        WHERE ${and([sql`r.relates_to_id = ${q.parentId}`, ...filters('r'), ...bounds])} ${order} LIMIT ${q.limit}`;
    } else {
      // UNION (not UNION ALL) and the level bound keep a cycle of relations from recursing for ever.
      query = sql`WITH RECURSIVE related(event_id, lvl) AS (
          SELECT c.event_id, 1 FROM event_relations c WHERE ${and([sql`c.relates_to_id = ${q.parentId}`, ...filters('c')])}
          UNION
          SELECT c.event_id, related.lvl + 1 FROM event_relations c JOIN related ON c.relates_to_id = related.event_id
          WHERE ${and([sql`related.lvl < ${q.depth}`, ...filters('c')])}
        )
        SELECT r.event_id, r.depth, r.stream_pos FROM event_relations r
        WHERE ${and([sql`r.event_id IN (SELECT event_id FROM related)`, ...bounds])} ${order} LIMIT ${q.limit}`;
    }
    return (await query.execute(this.db)).rows;
  }

  /** The children of these parents by these relation types (for the `m.replace` and `m.reference` bundles). */
  async childrenOf(parentIds: readonly string[], relTypes: readonly string[]): Promise<RelationRow[]> {
    const out: RelationRow[] = [];
    for (const ids of this.chunks(parentIds)) {
      out.push(
        ...(await this.db
          .selectFrom('event_relations')
          .selectAll()
          .where(anyOf(this.engine, 'relates_to_id', ids))
          .where('rel_type', 'in', [...relTypes])
          .execute()),
      );
    }
    return out;
  }

  /**
   * For each of these parents, per relation type of `relTypes` it has children of: their number,
   * whether `viewer` sent one, and for `m.thread` the latest child (topologically); children from
   * `excluded` senders are left out. One statement: for a page of events without relations, the
   * only read bundling makes.
   */
  async summaries(parentIds: readonly string[], relTypes: readonly string[], viewer: string, excluded: readonly string[] = []): Promise<RelationSummary[]> {
    const out: RelationSummary[] = [];
    const notExcluded = (alias: string) => (excluded.length === 0 ? sql`1 = 1` : sql`NOT ${anyOf(this.engine, `${alias}.sender`, excluded)}`);
    for (const ids of this.chunks(parentIds)) {
      const rows = await sql<{ relates_to_id: string; room_id: string; rel_type: string; count: number | string; participated: number | string; latest_event_id: string | null }>`
        SELECT r.relates_to_id, r.room_id, r.rel_type, COUNT(*) AS count,
          MAX(CASE WHEN r.sender = ${viewer} THEN 1 ELSE 0 END) AS participated,
          CASE WHEN r.rel_type = 'm.thread' THEN (SELECT l.event_id FROM event_relations l
            WHERE l.relates_to_id = r.relates_to_id AND l.room_id = r.room_id AND l.rel_type = 'm.thread' AND ${notExcluded('l')}
            ORDER BY l.depth DESC, l.stream_pos DESC LIMIT 1) END AS latest_event_id
        FROM event_relations r
        WHERE ${anyOf(this.engine, 'r.relates_to_id', ids)} AND ${sql.ref('r.rel_type')} IN (${sql.join([...relTypes])}) AND ${notExcluded('r')}
        GROUP BY r.relates_to_id, r.room_id, r.rel_type`.execute(this.db);
      for (const row of rows.rows) {
        out.push({ relates_to_id: row.relates_to_id, room_id: row.room_id, rel_type: row.rel_type, count: Number(row.count), latest_event_id: row.latest_event_id, participated: Number(row.participated) === 1 });
      }
    }
    return out;
  }

  /**
   * A room's threads, the one with the latest event first, whose latest event is before `before`
   * (a stream position); only those `participant` started or sent to when given. The root must be an
   * event of the room.
   */
  async threads(roomId: string, options: { before?: number; participant?: string; limit: number }): Promise<ThreadEntry[]> {
    const having: RawBuilder<unknown>[] = [];
    if (options.before !== undefined) having.push(sql`MAX(r.stream_pos) < ${options.before}`);
    if (options.participant !== undefined) {
      having.push(sql`(MAX(CASE WHEN r.sender = ${options.participant} THEN 1 ELSE 0 END) = 1 OR MAX(CASE WHEN e.sender = ${options.participant} THEN 1 ELSE 0 END) = 1)`);
    }
    const rows = await sql<{ root_id: string; latest_depth: number | string; latest_pos: number | string }>`
      SELECT r.relates_to_id AS root_id, MAX(r.depth) AS latest_depth, MAX(r.stream_pos) AS latest_pos
      FROM event_relations r JOIN events e ON e.event_id = r.relates_to_id
      WHERE r.room_id = ${roomId} AND r.rel_type = 'm.thread' AND e.room_id = ${roomId}
      GROUP BY r.relates_to_id
      ${having.length > 0 ? sql`HAVING ${sql.join(having, sql` AND `)}` : sql``}
      ORDER BY MAX(r.stream_pos) DESC LIMIT ${options.limit}`.execute(this.db);
    return rows.rows.map((r) => ({ root_id: r.root_id, latest_depth: Number(r.latest_depth), latest_pos: Number(r.latest_pos) }));
  }

  private chunks(ids: readonly string[]): string[][] {
    const unique = [...new Set(ids)];
    const size = this.engine === 'postgres' ? 5000 : CHUNK;
    const out: string[][] = [];
    for (let i = 0; i < unique.length; i += size) out.push(unique.slice(i, i + size));
    return out;
  }
}
