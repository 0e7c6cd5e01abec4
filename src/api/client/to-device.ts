import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { objectBody } from '../../validate.js';

export function toDeviceRoutes(router: Router, { toDevice }: Services): void {
  router.authed('PUT', '/sendToDevice/:eventType/:txnId', async ({ requester, params, body }) => {
    await toDevice.send(requester, params.eventType!, params.txnId!, objectBody(body));
    return {};
  });
}
