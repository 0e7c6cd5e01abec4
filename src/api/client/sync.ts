import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';

const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

export function syncRoutes(router: Router, { clientState }: Services): void {
  router.authed('GET', '/sync', async ({ requester, query }) =>
    clientState.sync.sync(requester, {
      since: str(query.since),
      timeout: str(query.timeout),
      full_state: str(query.full_state),
      set_presence: str(query.set_presence),
      filter: str(query.filter),
    }),
  );
}
