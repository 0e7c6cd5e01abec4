import { z } from 'zod';
import { parseQuery } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';

const ValidityQuery = z.object({ token: z.string().max(1000) });

/** GET /register/m.login.registration_token/validity (MSC3231, in the spec since v1.2). */
export function registrationTokenRoutes(router: Router, { admin }: Services): void {
  router.public('GET', '/register/m.login.registration_token/validity', async ({ query, ip }) => admin.registrationTokens.validity(parseQuery(ValidityQuery, query).token, ip), {
    prefixes: ['/_matrix/client/v1'],
  });
}
