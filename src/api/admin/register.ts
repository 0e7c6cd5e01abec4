import { z } from 'zod';
import { Displayname } from '../../http/common-schemas.js';
import { optional, parseBody } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { SharedSecretRegistration } from '../../services/shared-secret-registration.js';

const ADMIN_PREFIX = ['/_synapse/admin/v1'];

const SharedSecretBody = z.object({
  nonce: z.string().max(256),
  username: z.string().max(512),
  password: z.string().max(512),
  mac: z.string().max(256),
  displayname: optional(Displayname),
  user_type: optional(z.string().max(64)),
  admin: optional(z.boolean()),
});

export function sharedSecretRegistrationRoutes(router: Router, registration: SharedSecretRegistration): void {
  router.public('GET', '/register', async () => ({ nonce: await registration.nonce() }), { prefixes: ADMIN_PREFIX });
  router.public('POST', '/register', async (ctx) => registration.register(parseBody(SharedSecretBody, ctx.body), ctx.ip), { prefixes: ADMIN_PREFIX });
}
