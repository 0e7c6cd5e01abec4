import type { RequestContext, Router } from '../../http/router.js';
import { FormBody } from '../../http/form.js';
import type { Services } from '../../services/index.js';
import { UNSUBSCRIBE_PATH } from '../../services/push/unsubscribe.js';
import { page } from './render.js';

const PREFIX = '/_synapse/client';

interface LinkParams {
  access_token: string;
  app_id: string;
  pushkey: string;
}

/** The link's parameters: from the posted form, else the query string (a one-click POST sends them there). */
function linkParams(ctx: RequestContext): LinkParams | undefined {
  const form = ctx.body instanceof FormBody ? ctx.body : undefined;
  const read = (name: string) => {
    const value = form?.get(name) ?? ctx.query[name];
    return typeof value === 'string' && value.length > 0 && value.length <= 1024 ? value : undefined;
  };
  const [token, appId, pushkey] = [read('access_token'), read('app_id'), read('pushkey')];
  return token !== undefined && appId !== undefined && pushkey !== undefined ? { access_token: token, app_id: appId, pushkey } : undefined;
}

/**
 * The unsubscribe link of notification mails (Synapse's path and parameters). GET only shows a
 * confirmation page (mail scanners fetch links); the POST of its form, or a mail client's one-click
 * POST (RFC 8058), deletes the pusher. Every bad link gets the same page.
 */
export function unsubscribeRoutes(router: Router, services: Services): void {
  const unsubscribe = services.emailNotifs?.unsubscribe;
  if (!unsubscribe) return;
  const path = UNSUBSCRIBE_PATH.slice(PREFIX.length);
  const failure = (ctx: RequestContext) => page(services, 'notif_unsubscribe_failure', {}, ctx.headers, 400);

  router.public(
    'GET',
    path,
    async (ctx) => {
      const link = linkParams(ctx);
      if (!link || unsubscribe.check(link.access_token, link.app_id, link.pushkey) === undefined) return failure(ctx);
      return page(services, 'notif_unsubscribe_confirmation', { ...link }, ctx.headers);
    },
    { prefixes: [PREFIX] },
  );

  router.public(
    'POST',
    path,
    async (ctx) => {
      const link = linkParams(ctx);
      if (!link || !(await unsubscribe.unsubscribe(link.access_token, link.app_id, link.pushkey))) return failure(ctx);
      return page(services, 'notif_unsubscribe_success', {}, ctx.headers);
    },
    { prefixes: [PREFIX] },
  );
}
