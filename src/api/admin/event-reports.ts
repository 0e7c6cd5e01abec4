import { z } from 'zod';
import { invalidParam } from '../../errors.js';
import { optional, parseQuery } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { QueryInt, adminRoute } from './common.js';

const ListQuery = z.object({
  from: optional(QueryInt),
  limit: optional(QueryInt),
  dir: optional(z.enum(['f', 'b'])),
  user_id: optional(z.string().max(512)),
  room_id: optional(z.string().max(512)),
  event_sender_user_id: optional(z.string().max(512)),
});

/** A report ID from the path: a positive integer, as Synapse requires. */
function reportId(value: string | undefined): number {
  if (value === undefined || !/^[1-9]\d{0,15}$/.test(value)) throw invalidParam('The report_id parameter must be a string representing a positive integer.');
  return Number(value);
}

/** Synapse's event reports admin API. */
export function adminEventReportRoutes(router: Router, { admin }: Services): void {
  const reports = admin.eventReports;
  adminRoute(router, admin, 'GET', 'v1', '/event_reports', async ({ query }) => {
    const q = parseQuery(ListQuery, query);
    return reports.list({ userId: q.user_id, roomId: q.room_id, eventSender: q.event_sender_user_id }, { from: q.from ?? 0, limit: q.limit ?? 100, dir: q.dir ?? 'b' });
  });
  adminRoute(router, admin, 'GET', 'v1', '/event_reports/:reportId', async ({ params }) => reports.get(reportId(params.reportId)));
  adminRoute(router, admin, 'DELETE', 'v1', '/event_reports/:reportId', async ({ params }) => {
    await reports.delete(reportId(params.reportId));
    return {};
  });
}
