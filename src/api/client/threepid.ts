import { z } from 'zod';
import { AuthDict, ClientSecret, Email, Sid, ThreepidAddress, ThreepidCreds, TokenRequestFields, idServerNeedsToken } from '../../http/common-schemas.js';
import { optional, parseBody, refuseWith } from '../../http/parse.js';
import { CLIENT_AND_UNSTABLE_PREFIXES, type Router } from '../../http/router.js';
import { missingParam } from '../../errors.js';
import type { Services } from '../../services/index.js';
import type { Medium } from '../../services/threepid/address.js';
import { THREEPID_FLOWS, type ThreepidFlow } from '../../services/threepid/validation-sessions.js';
import { submitTokenPath } from '../../services/threepid/urls.js';
import { uiaParams } from '../../services/uia.js';
import type { JsonObject } from '../../validate.js';
import type { Handler } from '../../http/router.js';

const REQUEST_TOKEN_PATHS: Record<ThreepidFlow, string> = {
  registration: '/register/email/requestToken',
  password_reset: '/account/password/email/requestToken',
  add_threepid: '/account/3pid/email/requestToken',
};

const EmailTokenRequest = z.object({ ...TokenRequestFields, email: Email }).refine(...idServerNeedsToken);
const SubmitToken = z.object({ sid: Sid, client_secret: ClientSecret, token: z.string().max(64) });

/** POST /account/3pid/add: the credentials may be left out of a later request of the UIA session. */
const AddBody = z.object({ sid: optional(Sid), client_secret: optional(ClientSecret), auth: optional(AuthDict) });
const readAddParams = (raw: JsonObject) => parseBody(ThreepidCreds, raw);
/** The deprecated POST /account/3pid names them in `three_pid_creds` (or `threePidCreds`), in every request. */
const LegacyCreds = z
  .object({ three_pid_creds: optional(ThreepidCreds), threePidCreds: optional(ThreepidCreds) })
  .refine((body) => body.three_pid_creds ?? body.threePidCreds, refuseWith(() => missingParam('three_pid_creds')))
  .transform((body) => (body.three_pid_creds ?? body.threePidCreds)!);
const LegacyAddBody = z.object({ auth: optional(AuthDict) }).and(LegacyCreds);
const readLegacyParams = (raw: JsonObject) => parseBody(LegacyCreds, raw);

const DeleteBody = z.object({ id_server: optional(z.string().max(512)) }).and(ThreepidAddress);
const BindBody = z.object({ client_secret: ClientSecret, sid: Sid, id_server: z.string().max(512), id_access_token: z.string().max(2048) });

/** The submit_url handler for a medium's codes: {sid, client_secret, token} -> {success: true}. */
export function submitTokenHandler({ threepid }: Services, flow: ThreepidFlow, medium: Medium): Handler {
  return async (ctx) => {
    const { sid, client_secret: clientSecret, token } = parseBody(SubmitToken, ctx.body);
    await threepid.sessions.submitCode({ sid, clientSecret, code: token.trim(), medium, flow });
    return { success: true };
  };
}

export function threepidRoutes(router: Router, services: Services): void {
  const { threepid } = services;

  for (const flow of THREEPID_FLOWS) {
    router.public('POST', REQUEST_TOKEN_PATHS[flow], async (ctx) =>
      threepid.email.requestToken(flow, parseBody(EmailTokenRequest, ctx.body), { ip: ctx.ip, acceptLanguage: ctx.headers['accept-language'] }),
      { costly: true },
    );
    const path = submitTokenPath(flow, 'email');
    const prefix = '/_matrix/client/unstable';
    router.public('POST', path.slice(prefix.length), submitTokenHandler(services, flow, 'email'), { prefixes: [prefix] });
  }

  router.authed('GET', '/account/3pid', async ({ requester }) => ({ threepids: await threepid.account.list(requester.userId) }));
  router.authed('POST', '/account/3pid', async (ctx) => {
    const { auth } = parseBody(LegacyAddBody, ctx.body);
    return threepid.account.legacyAdd(ctx.requester.userId, { auth, params: { raw: uiaParams(ctx.body), read: readLegacyParams } }, ctx.ip);
  });
  router.authed('POST', '/account/3pid/add', async (ctx) => {
    const { auth } = parseBody(AddBody, ctx.body);
    return threepid.account.add(ctx.requester.userId, { auth, params: { raw: uiaParams(ctx.body), read: readAddParams } }, ctx.ip);
  });
  router.authed('POST', '/account/3pid/delete', async (ctx) => threepid.account.delete(ctx.requester.userId, parseBody(DeleteBody, ctx.body)));
  // Also under /unstable, where MSC2290 introduced it and clients of that time still call it; Synapse serves it there too.
  router.authed('POST', '/account/3pid/bind', async (ctx) => threepid.account.bind(ctx.requester.userId, parseBody(BindBody, ctx.body)), { prefixes: CLIENT_AND_UNSTABLE_PREFIXES });
  router.authed('POST', '/account/3pid/unbind', async (ctx) => threepid.account.unbind(ctx.requester.userId, parseBody(DeleteBody, ctx.body)));
}
