import { notFound } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import type { EventReportFilter, EventReportRow } from '../../storage/reports.js';
import type { JsonObject } from '../../validate.js';

export interface EventReportPage {
  event_reports: EventReportRow[];
  total: number;
  /** The `from` of the next page, when there is one. */
  next_token?: number;
}

/** Synapse's event reports admin API (docs/admin_api/event_reports.md): list, read and delete reports. */
export class AdminEventReportService {
  constructor(private readonly store: Store) {}

  async list(filter: EventReportFilter, page: { from: number; limit: number; dir: 'f' | 'b' }): Promise<EventReportPage> {
    const { reports, total } = await this.store.reports.listEventReports(filter, page);
    const result: EventReportPage = { event_reports: reports, total };
    if (page.from + reports.length < total && reports.length > 0) result.next_token = page.from + reports.length;
    return result;
  }

  /** One report, with the reported event as stored (null once the room was purged). */
  async get(id: number): Promise<EventReportRow & { event_json: JsonObject | null }> {
    const report = await this.store.reports.eventReport(id);
    if (!report) throw notFound('Event report not found');
    const { pdu, ...rest } = report;
    return { ...rest, event_json: pdu === null ? null : (JSON.parse(pdu) as JsonObject) };
  }

  async delete(id: number): Promise<void> {
    if (!(await this.store.reports.deleteEventReport(id))) throw notFound('Event report not found');
  }
}
