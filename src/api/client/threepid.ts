import { CLIENT_AND_UNSTABLE_PREFIXES, type Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import type { Medium } from '../../services/threepid/address.js';
import { parseClientSecret, parseSid } from '../../services/threepid/policy.js';
import { THREEPID_FLOWS, type ThreepidFlow } from '../../services/threepid/validation-sessions.js';
import { submitTokenPath } from '../../services/threepid/urls.js';
import { objectBody, requireString } from '../../validate.js';
import type { Handler } from '../../http/router.js';

const REQUEST_TOKEN_PATHS: Record<ThreepidFlow, string> = {
  registration: '/register/email/requestToken',
  password_reset: '/account/password/email/requestToken',
  add_threepid: '/account/3pid/email/requestToken',
};

/** The submit_url handler for a medium's codes: {sid, client_secret, token} -> {success: true}. */
export function submitTokenHandler({ threepid }: Services, flow: ThreepidFlow, medium: Medium): Handler {
  return async (ctx) => {
    const body = objectBody(ctx.body);
    const sid = parseSid(body);
    const clientSecret = parseClientSecret(body);
    const code = requireString(body, 'token', 64);
    await threepid.sessions.submitCode({ sid, clientSecret, code: code.trim(), medium, flow });
    return { success: true };
  };
}

export function threepidRoutes(router: Router, services: Services): void {
  const { threepid } = services;

  for (const flow of THREEPID_FLOWS) {
    router.public('POST', REQUEST_TOKEN_PATHS[flow], async (ctx) =>
      threepid.email.requestToken(flow, objectBody(ctx.body), { ip: ctx.ip, acceptLanguage: ctx.headers['accept-language'] }),
    );
    const path = submitTokenPath(flow, 'email');
    const prefix = '/_matrix/client/unstable';
    router.public('POST', path.slice(prefix.length), submitTokenHandler(services, flow, 'email'), { prefixes: [prefix] });
  }

  router.authed('GET', '/account/3pid', async ({ requester }) => ({ threepids: await threepid.account.list(requester.userId) }));
  router.authed('POST', '/account/3pid', async (ctx) => threepid.account.legacyAdd(ctx.requester.userId, objectBody(ctx.body), ctx.ip));
  router.authed('POST', '/account/3pid/add', async (ctx) => threepid.account.add(ctx.requester.userId, objectBody(ctx.body), ctx.ip));
  router.authed('POST', '/account/3pid/delete', async (ctx) => threepid.account.delete(ctx.requester.userId, objectBody(ctx.body)));
  // Also under /unstable, where MSC2290 introduced it and clients of that time still call it; Synapse serves it there too.
  router.authed('POST', '/account/3pid/bind', async (ctx) => threepid.account.bind(ctx.requester.userId, objectBody(ctx.body)), { prefixes: CLIENT_AND_UNSTABLE_PREFIXES });
  router.authed('POST', '/account/3pid/unbind', async (ctx) => threepid.account.unbind(ctx.requester.userId, objectBody(ctx.body)));
}
