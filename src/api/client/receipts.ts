import { z } from 'zod';
import { invalidParam } from '../../errors.js';
import { optional, parseBody } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { RECEIPT_TYPES, type ReceiptType } from '../../services/ephemeral/receipts.js';
import { isRoomId } from '../../services/user-ids.js';

/** An event ID as the spec's grammar has it: the `$` sigil, at most 255 bytes. */
const isEventId = (value: string) => /^\$[^\s\p{Cc}]+$/u.test(value) && Buffer.byteLength(value) <= 255;
const EventId = z.string().refine(isEventId, 'must be an event ID');

/** Built once: building a schema per request cost about a fifth of a repeated receipt's handling (a CPU profile). */
const ReceiptBody = z.record(z.string(), z.unknown());

const ReadMarkersBody = z.object({
  'm.fully_read': optional(EventId),
  'm.read': optional(EventId),
  'm.read.private': optional(EventId),
});

function roomIdParam(value: string | undefined): string {
  if (value === undefined || !isRoomId(value)) throw invalidParam('Invalid room ID');
  return value;
}

/** `thread_id`, when given, is a non-empty string (the spec's 400, M_INVALID_PARAM as in its example). */
function threadIdOf(body: Record<string, unknown>): string | undefined {
  if (!('thread_id' in body)) return undefined;
  const threadId = body.thread_id;
  if (typeof threadId !== 'string' || threadId === '') throw invalidParam('thread_id field must be a non-empty string');
  return threadId;
}

export function receiptRoutes(router: Router, { receipts }: Services): void {
  router.authed('POST', '/rooms/:roomId/receipt/:receiptType/:eventId', async ({ requester, params, body }) => {
    const roomId = roomIdParam(params.roomId);
    const type = params.receiptType!;
    if (!(RECEIPT_TYPES as readonly string[]).includes(type)) throw invalidParam(`Receipt type must be one of ${RECEIPT_TYPES.join(', ')}`);
    const eventId = params.eventId!;
    if (!isEventId(eventId)) throw invalidParam('Invalid event ID');
    const threadId = threadIdOf(parseBody(ReceiptBody, body));
    await receipts.send(requester.userId, roomId, type as ReceiptType, eventId, threadId);
    return {};
  });

  router.authed('POST', '/rooms/:roomId/read_markers', async ({ requester, params, body }) => {
    const roomId = roomIdParam(params.roomId);
    const markers = parseBody(ReadMarkersBody, body);
    await receipts.setReadMarkers(requester.userId, roomId, { fullyRead: markers['m.fully_read'], read: markers['m.read'], readPrivate: markers['m.read.private'] });
    return {};
  });
}
