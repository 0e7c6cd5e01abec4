import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { objectBody } from '../../validate.js';

export function presenceRoutes(router: Router, { presence }: Services): void {
  router.authed('GET', '/presence/:userId/status', async ({ requester, params }) => presence.get(requester.userId, params.userId!));
  router.authed('PUT', '/presence/:userId/status', async ({ requester, params, body }) => {
    await presence.set(requester.userId, params.userId!, objectBody(body));
    return {};
  });
}
