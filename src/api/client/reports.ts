import { z } from 'zod';
import { guestForbidden } from '../../errors.js';
import { optional, parseBody } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { roomIdParam } from './rooms.js';

const Reason = z.string().max(10_000);
// `score` left the spec in v1.18; it is still taken, in its old range, and kept for the admin API.
const EventReport = z.object({ reason: optional(Reason), score: optional(z.number().int().min(-100).max(0)) });
const RoomReport = z.object({ reason: Reason });

/** The spec's "Reporting content": events (v1.1) and rooms (v1.13). */
export function reportRoutes(router: Router, { reports }: Services): void {
  // As Synapse: guests may not report.
  router.authed('POST', '/rooms/:roomId/report/:eventId', async ({ requester, params, body }) => {
    if (requester.isGuest) throw guestForbidden();
    const { reason, score } = parseBody(EventReport, body);
    await reports.reportEvent(requester, roomIdParam(params.roomId), params.eventId!, reason, score);
    return {};
  });
  router.authed('POST', '/rooms/:roomId/report', async ({ requester, params, body }) => {
    if (requester.isGuest) throw guestForbidden();
    const { reason } = parseBody(RoomReport, body);
    await reports.reportRoom(requester, roomIdParam(params.roomId), reason);
    return {};
  });
}
