import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { objectBody } from '../../validate.js';

export function accountDataRoutes(router: Router, { accountData }: Services): void {
  const data = accountData;
  router.authed('PUT', '/user/:userId/account_data/:type', async ({ requester, params, body }) => {
    await data.put(requester.userId, params.userId!, undefined, params.type!, objectBody(body));
    return {};
  });
  router.authed('GET', '/user/:userId/account_data/:type', async ({ requester, params }) => data.get(requester.userId, params.userId!, undefined, params.type!));
  router.authed('PUT', '/user/:userId/rooms/:roomId/account_data/:type', async ({ requester, params, body }) => {
    await data.put(requester.userId, params.userId!, params.roomId!, params.type!, objectBody(body));
    return {};
  });
  router.authed('GET', '/user/:userId/rooms/:roomId/account_data/:type', async ({ requester, params }) =>
    data.get(requester.userId, params.userId!, params.roomId!, params.type!),
  );
}
