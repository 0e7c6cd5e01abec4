import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { objectBody } from '../../validate.js';

export function filterRoutes(router: Router, { filters }: Services): void {
  router.authed('POST', '/user/:userId/filter', async ({ requester, params, body }) => ({
    filter_id: await filters.create(requester.userId, params.userId!, objectBody(body)),
  }));
  router.authed('GET', '/user/:userId/filter/:filterId', async ({ requester, params }) =>
    filters.get(requester.userId, params.userId!, params.filterId!),
  );
}
