import { z } from 'zod';
import { PhoneNumberFields, TokenRequestFields, idServerNeedsToken, withParsedMsisdn } from '../../http/common-schemas.js';
import { parseBody } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { THREEPID_FLOWS, type ThreepidFlow } from '../../services/threepid/validation-sessions.js';
import { submitTokenPath } from '../../services/threepid/urls.js';
import { submitTokenHandler } from './threepid.js';

const REQUEST_TOKEN_PATHS: Record<ThreepidFlow, string> = {
  registration: '/register/msisdn/requestToken',
  password_reset: '/account/password/msisdn/requestToken',
  add_threepid: '/account/3pid/msisdn/requestToken',
};

const MsisdnTokenRequest = z.object({ ...TokenRequestFields, ...PhoneNumberFields }).refine(...idServerNeedsToken).transform(withParsedMsisdn);

const UNSTABLE = '/_matrix/client/unstable';

/** The msisdn requestToken endpoints and the submit_url for SMS codes. */
export function msisdnRoutes(router: Router, services: Services): void {
  for (const flow of THREEPID_FLOWS) {
    router.public('POST', REQUEST_TOKEN_PATHS[flow], async (ctx) => services.threepid.msisdn.requestToken(flow, parseBody(MsisdnTokenRequest, ctx.body), { ip: ctx.ip }), {
      costly: true,
    });
    router.public('POST', submitTokenPath(flow, 'msisdn').slice(UNSTABLE.length), submitTokenHandler(services, flow, 'msisdn'), { prefixes: [UNSTABLE] });
  }
}
