import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { optional, parseBody, parseQuery } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { DEFAULT_CONTEXT_LIMIT, MAX_CONTEXT_LIMIT, type RoomEventsCriteria } from '../../services/rooms/search.js';
import { SEARCH_KEYS } from '../../storage/search.js';
import { roomEventFilterOf } from './room-reads.js';

/** Far beyond a typed query; bounds the work one term makes the index do. */
const MAX_SEARCH_TERM = 4096;

const ContextLimit = optional(z.number().int().nonnegative()).transform((value) => Math.min(value ?? DEFAULT_CONTEXT_LIMIT, MAX_CONTEXT_LIMIT));

const RoomEvents = z.object({
  search_term: z.string().max(MAX_SEARCH_TERM),
  keys: optional(z.array(z.enum(SEARCH_KEYS)).max(SEARCH_KEYS.length * 4)),
  filter: optional(z.unknown()),
  order_by: optional(z.enum(['rank', 'recent'])),
  event_context: optional(z.object({ before_limit: ContextLimit, after_limit: ContextLimit, include_profile: optional(z.boolean()) })),
  include_state: optional(z.boolean()),
  groupings: optional(z.object({ group_by: optional(z.array(z.object({ key: z.enum(['room_id', 'sender']) })).max(10)) })),
});

const SearchBody = z.object({ search_categories: z.object({ room_events: optional(RoomEvents) }) });

const SearchQuery = z.object({ next_batch: optional(z.string()).transform((value) => (value === '' ? undefined : value)) });

/** POST /search: the room_events category, the only one the spec has. */
export function searchRoutes(router: Router, { search, config }: Services): void {
  router.authed('POST', '/search', async ({ requester, body, query }) => {
    if (!config.enable_search) throw new MatrixError(400, 'M_UNKNOWN', 'Search is disabled on this homeserver');
    const { next_batch: nextBatch } = parseQuery(SearchQuery, query);
    const roomEvents = parseBody(SearchBody, body).search_categories.room_events;
    if (!roomEvents) return { search_categories: {} };
    const criteria: RoomEventsCriteria = {
      search_term: roomEvents.search_term,
      keys: [...new Set(roomEvents.keys ?? SEARCH_KEYS)],
      order_by: roomEvents.order_by ?? 'rank',
      include_state: roomEvents.include_state ?? false,
      group_by: [...new Set((roomEvents.groupings?.group_by ?? []).map((g) => g.key))],
    };
    if (roomEvents.filter !== undefined) criteria.filter = roomEventFilterOf(roomEvents.filter);
    if (roomEvents.event_context) {
      const { before_limit: before, after_limit: after, include_profile: profile } = roomEvents.event_context;
      criteria.event_context = { before_limit: before, after_limit: after, include_profile: profile ?? false };
    }
    return { search_categories: { room_events: await search.roomEvents(requester, criteria, nextBatch) } };
  });
}
