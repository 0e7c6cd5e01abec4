import type { Router } from '../../http/router.js';
import type { SharedSecretRegistration } from '../../services/shared-secret-registration.js';
import { objectBody } from '../../validate.js';

const ADMIN_PREFIX = ['/_synapse/admin/v1'];

export function sharedSecretRegistrationRoutes(router: Router, registration: SharedSecretRegistration): void {
  router.public('GET', '/register', async () => ({ nonce: await registration.nonce() }), { prefixes: ADMIN_PREFIX });
  router.public('POST', '/register', async (ctx) => registration.register(objectBody(ctx.body), ctx.ip), { prefixes: ADMIN_PREFIX });
}
