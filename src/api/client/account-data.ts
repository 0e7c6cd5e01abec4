import type { Router } from '../../http/router.js';
import { parseBody } from '../../http/parse.js';
import type { Services } from '../../services/index.js';
import { JsonObject } from '../../http/common-schemas.js';

/** Account data content is any JSON object, stored as sent. */
const AccountDataContent = JsonObject;

export function accountDataRoutes(router: Router, { accountData }: Services): void {
  const data = accountData;
  router.authed('PUT', '/user/:userId/account_data/:type', async ({ requester, params, body }) => {
    await data.put(requester.userId, params.userId!, undefined, params.type!, parseBody(AccountDataContent, body));
    return {};
  });
  router.authed('GET', '/user/:userId/account_data/:type', async ({ requester, params }) => data.get(requester.userId, params.userId!, undefined, params.type!));
  router.authed('PUT', '/user/:userId/rooms/:roomId/account_data/:type', async ({ requester, params, body }) => {
    await data.put(requester.userId, params.userId!, params.roomId!, params.type!, parseBody(AccountDataContent, body));
    return {};
  });
  router.authed('GET', '/user/:userId/rooms/:roomId/account_data/:type', async ({ requester, params }) =>
    data.get(requester.userId, params.userId!, params.roomId!, params.type!),
  );
}
