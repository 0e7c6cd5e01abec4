import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';

export function syncRoutes(router: Router, { sync }: Services): void {
  router.authed('GET', '/sync', async ({ requester, query }) =>
    sync.sync(requester, {
      since: query.since,
      timeout: query.timeout,
      full_state: query.full_state,
      set_presence: query.set_presence,
      filter: query.filter,
    }),
  );
}
