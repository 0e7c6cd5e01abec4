import { z } from 'zod';
import type { Router } from '../../http/router.js';
import { optional, parseBody, parseQuery } from '../../http/parse.js';
import type { Services } from '../../services/index.js';
import type { JsonObject } from '../../validate.js';

const SetPusherBody = z.object({
  // Required, and null deletes: present-but-null must stay null, so not optional().
  kind: z.string().nullable(),
  app_id: z.string(),
  pushkey: z.string(),
  app_display_name: optional(z.string()),
  device_display_name: optional(z.string()),
  profile_tag: optional(z.string()),
  lang: optional(z.string()),
  data: optional(z.looseObject({}).transform((data) => data as JsonObject)),
  append: optional(z.boolean()),
});

const NotificationsQuery = z.object({
  from: optional(z.string()),
  limit: optional(z.coerce.number().int()),
  only: optional(z.string()),
});

export function pusherRoutes(router: Router, { pushers, notifications }: Services): void {
  router.authed('GET', '/notifications', async ({ requester, query }) => notifications.list(requester, parseQuery(NotificationsQuery, query)));
  router.authed('GET', '/pushers', async ({ requester }) => ({ pushers: await pushers.list(requester.userId) }));
  router.authed('POST', '/pushers/set', async ({ requester, body }) => {
    await pushers.set(requester, parseBody(SetPusherBody, body));
    return {};
  });
}
