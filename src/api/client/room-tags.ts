import { z } from 'zod';
import { optional, parseBody } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';

/** The spec's Tag: an optional numeric `order`; other keys are kept as sent. */
const Tag = z.looseObject({ order: optional(z.number()) });

export function roomTagRoutes(router: Router, { roomTags }: Services): void {
  router.authed('GET', '/user/:userId/rooms/:roomId/tags', async ({ requester, params }) => ({
    tags: await roomTags.tags(requester.userId, params.userId!, params.roomId!),
  }));
  router.authed('PUT', '/user/:userId/rooms/:roomId/tags/:tag', async ({ requester, params, body }) => {
    await roomTags.put(requester.userId, params.userId!, params.roomId!, params.tag!, parseBody(Tag, body));
    return {};
  });
  router.authed('DELETE', '/user/:userId/rooms/:roomId/tags/:tag', async ({ requester, params }) => {
    await roomTags.delete(requester.userId, params.userId!, params.roomId!, params.tag!);
    return {};
  });
}
