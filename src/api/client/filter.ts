import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { parseFilter } from '../../services/sync/filters.js';

export function filterRoutes(router: Router, { filters }: Services): void {
  // The body is the filter itself, checked against the spec's Filter schema (a missing body is {}).
  router.authed('POST', '/user/:userId/filter', async ({ requester, params, body }) => ({
    filter_id: await filters.create(requester.userId, params.userId!, parseFilter(body ?? {})),
  }));
  router.authed('GET', '/user/:userId/filter/:filterId', async ({ requester, params }) =>
    filters.get(requester.userId, params.userId!, params.filterId!),
  );
}
