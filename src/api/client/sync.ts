import { z } from 'zod';
import type { Router } from '../../http/router.js';
import { optional, parseQuery } from '../../http/parse.js';
import type { Services } from '../../services/index.js';
import { PRESENCE_STATES } from '../../services/presence.js';
import { QueryBoolean, QueryInteger } from '../../http/common-schemas.js';

/** The longest a sync may wait, whatever timeout the client asks for. */
const MAX_TIMEOUT_MS = 10 * 60_000;

const SyncQuery = z.object({
  since: optional(z.string()).transform((since) => (since === '' ? undefined : since)),
  timeout: QueryInteger.transform((ms) => Math.min(ms ?? 0, MAX_TIMEOUT_MS)),
  full_state: optional(QueryBoolean).transform((full) => full ?? false),
  set_presence: optional(z.enum(PRESENCE_STATES)).transform((state) => state ?? 'online'),
  filter: optional(z.string()).transform((filter) => (filter === '' ? undefined : filter)),
});

export function syncRoutes(router: Router, { sync }: Services): void {
  router.authed('GET', '/sync', async ({ requester, query }) => {
    const { since, timeout, full_state: fullState, set_presence: setPresence, filter } = parseQuery(SyncQuery, query);
    return sync.sync(requester, { since, timeoutMs: timeout, fullState, setPresence, filter });
  });
}
