import { FormBody } from '../../http/form.js';
import { RedirectReply } from '../../http/reply.js';
import type { RequestContext, Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import type { LinkParams } from '../../services/threepid/email.js';
import { THREEPID_FLOWS } from '../../services/threepid/validation-sessions.js';
import { emailLinkPath } from '../../services/threepid/urls.js';
import { page } from './render.js';
import { CLIENT_SECRET } from '../../services/threepid/policy.js';

const PREFIX = '/_synapse/client';
/** One wording for every failure, so a page reveals nothing about why a link does not work. */
const FAILURE_REASON = 'This link has expired, has already been used, or is not valid.';

/** The link's parameters: from the posted form, else the query string; undefined if malformed. */
function linkParams(ctx: RequestContext): LinkParams | undefined {
  const form = ctx.body instanceof FormBody ? ctx.body : undefined;
  const read = (name: string) => form?.get(name) ?? ctx.query[name];
  const sid = read('sid');
  const clientSecret = read('client_secret');
  const token = read('token');
  if (!sid || !clientSecret || !token || !CLIENT_SECRET.test(sid) || !CLIENT_SECRET.test(clientSecret) || !CLIENT_SECRET.test(token)) return undefined;
  return { sid, client_secret: clientSecret, token };
}

/**
 * The pages a mailed link opens. GET only shows a confirmation page (mail scanners and link
 * previews fetch links; they must not validate anything); the POST from its form validates.
 */
export function threepidPageRoutes(router: Router, services: Services): void {
  const { threepid } = services;
  for (const flow of THREEPID_FLOWS) {
    const path = emailLinkPath(flow).slice(PREFIX.length);
    const failure = (ctx: RequestContext) => page(services, `${flow}_failure`, { failure_reason: FAILURE_REASON }, ctx.headers, 400);

    router.public(
      'GET',
      path,
      async (ctx) => {
        const link = linkParams(ctx);
        const state = link && (await threepid.email.checkLink(flow, link));
        if (!link || !state) return failure(ctx);
        const targets = state.nextLink ? [new URL(state.nextLink).origin] : [];
        return page(services, `${flow}_confirmation`, { ...link }, ctx.headers, 200, targets);
      },
      { prefixes: [PREFIX] },
    );

    router.public(
      'POST',
      path,
      async (ctx) => {
        const link = linkParams(ctx);
        const done = link && (await threepid.email.confirmLink(flow, link));
        if (!link || !done) return failure(ctx);
        if (done.nextLink) return new RedirectReply(done.nextLink);
        return page(services, `${flow}_success`, {}, ctx.headers);
      },
      { prefixes: [PREFIX] },
    );
  }
}
