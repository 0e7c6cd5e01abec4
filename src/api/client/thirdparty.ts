import { z } from 'zod';
import { notFound } from '../../errors.js';
import type { Router } from '../../http/router.js';
import { parseQuery } from '../../http/parse.js';
import type { Services } from '../../services/index.js';

const LocationQuery = z.object({ alias: z.string() });
const UserQuery = z.object({ userid: z.string() });

/** Third-party networks come from application services (bridges); Myelin has none, so none are listed. */
export function thirdPartyRoutes(router: Router, _services: Services): void {
  router.authed('GET', '/thirdparty/protocols', async () => ({}));
  const unknownProtocol = async () => {
    throw notFound('No such protocol');
  };
  router.authed('GET', '/thirdparty/protocol/:protocol', unknownProtocol);
  router.authed('GET', '/thirdparty/location/:protocol', unknownProtocol);
  router.authed('GET', '/thirdparty/user/:protocol', unknownProtocol);
  router.authed('GET', '/thirdparty/location', async ({ query }) => {
    parseQuery(LocationQuery, query);
    return [];
  });
  router.authed('GET', '/thirdparty/user', async ({ query }) => {
    parseQuery(UserQuery, query);
    return [];
  });
}
