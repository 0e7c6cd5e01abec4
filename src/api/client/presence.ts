import { z } from 'zod';
import type { Router } from '../../http/router.js';
import { optional, parseBody } from '../../http/parse.js';
import type { Services } from '../../services/index.js';
import { PRESENCE_STATES } from '../../services/presence.js';

const PresenceUpdate = z.object({ presence: z.enum(PRESENCE_STATES), status_msg: optional(z.string().max(1024)) });

export function presenceRoutes(router: Router, { presence }: Services): void {
  router.authed('GET', '/presence/:userId/status', async ({ requester, params }) => presence.get(requester.userId, params.userId!));
  router.authed('PUT', '/presence/:userId/status', async ({ requester, params, body }) => {
    await presence.set(requester.userId, params.userId!, parseBody(PresenceUpdate, body));
    return {};
  });
}
