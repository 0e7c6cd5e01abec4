import { z } from 'zod';
import type { Router } from '../../http/router.js';
import { dict, parseBody } from '../../http/parse.js';
import type { Services } from '../../services/index.js';
import { JsonObject, UserId } from '../../http/common-schemas.js';

/** user ID -> device ID (or '*') -> message content. */
const SendToDevice = z.object({ messages: dict(UserId, dict(z.string(), JsonObject)) });

export function toDeviceRoutes(router: Router, { toDevice }: Services): void {
  router.authed('PUT', '/sendToDevice/:eventType/:txnId', async ({ requester, params, body }) => {
    await toDevice.send(requester, params.eventType!, params.txnId!, parseBody(SendToDevice, body).messages);
    return {};
  });
}
