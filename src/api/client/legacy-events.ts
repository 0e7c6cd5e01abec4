import { z } from 'zod';
import { invalidParam } from '../../errors.js';
import { QueryBoolean, QueryInteger } from '../../http/common-schemas.js';
import { optional, parseQuery } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { DEFAULT_STREAM_LIMIT } from '../../services/sync/legacy-events.js';
import { isRoomId } from '../../services/user-ids.js';

/** The longest an /events request waits, whatever timeout it asks for. */
const MAX_TIMEOUT_MS = 10 * 60_000;
/**
 * The wait when the request names none: none, as /sync (the spec names no default; Synapse waits
 * 30 s, which no client of this old API is known to rely on, while a request that hangs unasked does harm).
 */
const DEFAULT_TIMEOUT_MS = 0;

const OptionalString = optional(z.string()).transform((value) => (value === '' ? undefined : value));

const EventsQuery = z.object({
  // "END" meant "from now" in the API's first days; Synapse still reads it so.
  from: OptionalString.transform((from) => (from === 'END' ? undefined : from)),
  timeout: QueryInteger.transform((ms) => Math.min(ms ?? DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS)),
  limit: QueryInteger.transform((limit) => limit ?? DEFAULT_STREAM_LIMIT),
  room_id: OptionalString,
});

const InitialSyncQuery = z.object({
  limit: QueryInteger.transform((limit) => limit ?? 10),
  archived: optional(QueryBoolean).transform((archived) => archived ?? false),
});

const RoomInitialSyncQuery = z.object({ limit: QueryInteger });

/** The deprecated event stream and snapshots, still in the spec (rules in services/sync/legacy-events.ts). */
export function legacyEventRoutes(router: Router, { legacyEvents }: Services): void {
  router.authed('GET', '/events', ({ requester, query }) => {
    const { from, timeout, limit, room_id: roomId } = parseQuery(EventsQuery, query);
    if (roomId !== undefined && !isRoomId(roomId)) throw invalidParam('Invalid room ID');
    return legacyEvents.stream(requester, { from, timeoutMs: timeout, limit, roomId });
  });

  router.authed('GET', '/events/:eventId', ({ requester, params }) => legacyEvents.event(requester, params.eventId!));

  router.authed('GET', '/initialSync', ({ requester, query }) => {
    const { limit, archived } = parseQuery(InitialSyncQuery, query);
    return legacyEvents.initialSync(requester, { limit, archived });
  });

  router.authed('GET', '/rooms/:roomId/initialSync', ({ requester, params, query }) => {
    const { limit } = parseQuery(RoomInitialSyncQuery, query);
    const roomId = params.roomId;
    if (roomId === undefined || !isRoomId(roomId)) throw invalidParam('Invalid room ID');
    return legacyEvents.roomInitialSync(requester, roomId, limit);
  });
}
