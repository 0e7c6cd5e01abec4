import { sql, type Expression, type ExpressionBuilder, type Kysely, type Selectable, type SqlBool } from 'kysely';
import type { Engine } from './db.js';
import type { EventReportsTable, RoomReportsTable } from './reports-schema.js';
import type { Database } from './schema.js';

/** An event report as the admin API shows it: with the room's name and canonical alias as they are now. */
export type EventReportRow = Selectable<EventReportsTable> & { name: string | null; canonical_alias: string | null };

export interface EventReportFilter {
  /** Part of the reporter's user ID. */
  userId?: string;
  /** Part of the room ID. */
  roomId?: string;
  /** The reported event's sender, exactly. */
  eventSender?: string;
}

type Db = ExpressionBuilder<Database & { r: EventReportsTable }, 'r'>;

/** Reports of events and rooms, for the server's admins. */
export class ReportsRepo {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly engine: Engine,
  ) {}

  async addEventReport(row: Omit<EventReportsTable, 'id'>): Promise<number> {
    const { id } = await this.db.insertInto('event_reports').values(row).returning('id').executeTakeFirstOrThrow();
    return Number(id);
  }

  async addRoomReport(row: Omit<RoomReportsTable, 'id'>): Promise<number> {
    const { id } = await this.db.insertInto('room_reports').values(row).returning('id').executeTakeFirstOrThrow();
    return Number(id);
  }

  /** One page of event reports, newest first (`b`) or oldest first (`f`), and how many match in all. */
  async listEventReports(filter: EventReportFilter, page: { from: number; limit: number; dir: 'f' | 'b' }): Promise<{ reports: EventReportRow[]; total: number }> {
    const where = (eb: Db): Expression<SqlBool> => {
      const conditions: Expression<SqlBool>[] = [];
      if (filter.userId !== undefined) conditions.push(this.contains(eb.ref('r.user_id'), filter.userId));
      if (filter.roomId !== undefined) conditions.push(this.contains(eb.ref('r.room_id'), filter.roomId));
      if (filter.eventSender !== undefined) conditions.push(eb('r.sender', '=', filter.eventSender));
      return eb.and(conditions);
    };
    const { n } = await this.db.selectFrom('event_reports as r').select(sql<number>`COUNT(*)`.as('n')).where(where).executeTakeFirstOrThrow();
    const rows = await this.withRoom()
      .where(where)
      .orderBy('r.id', page.dir === 'b' ? 'desc' : 'asc')
      .limit(page.limit)
      .offset(page.from)
      .execute();
    return { reports: rows.map(numbers), total: Number(n) };
  }

  async eventReport(id: number): Promise<(EventReportRow & { pdu: string | null }) | undefined> {
    const row = await this.withRoom().leftJoin('events as e', 'e.event_id', 'r.event_id').select('e.pdu').where('r.id', '=', id).executeTakeFirst();
    return row && { ...numbers(row), pdu: row.pdu };
  }

  /** False when there was no such report. */
  async deleteEventReport(id: number): Promise<boolean> {
    const result = await this.db.deleteFrom('event_reports').where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  private withRoom() {
    return this.db
      .selectFrom('event_reports as r')
      .leftJoin('room_directory as d', 'd.room_id', 'r.room_id')
      .select(['r.id', 'r.received_ts', 'r.room_id', 'r.event_id', 'r.user_id', 'r.reason', 'r.score', 'r.sender', 'd.name', 'd.canonical_alias']);
  }

  /** A case-sensitive substring test, with no LIKE wildcards to escape. */
  private contains(column: Expression<string>, part: string): Expression<SqlBool> {
    return this.engine === 'postgres' ? sql<SqlBool>`strpos(${column}, ${part}) > 0` : sql<SqlBool>`instr(${column}, ${part}) > 0`;
  }
}

function numbers<T extends { id: number; received_ts: number; score: number | null }>(row: T): T {
  return { ...row, id: Number(row.id), received_ts: Number(row.received_ts), score: row.score === null ? null : Number(row.score) };
}
