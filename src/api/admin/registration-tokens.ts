import { z } from 'zod';
import { optional, parseBody, parseQuery } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import { TOKEN_GRAMMAR, type RegistrationTokenChanges } from '../../services/admin/registration-tokens.js';
import type { Services } from '../../services/index.js';
import { QueryBool, adminRoute } from './common.js';

const ListQuery = z.object({ valid: optional(QueryBool) });
const UsesAllowed = z.number().int().nonnegative();
const ExpiryTime = z.number().int().nonnegative();
const CreateBody = z.object({
  token: optional(z.string().regex(TOKEN_GRAMMAR, 'must be 1 to 64 of [A-Za-z0-9._~-]')),
  length: optional(z.number().int().min(1).max(64)),
  uses_allowed: optional(UsesAllowed),
  expiry_time: optional(ExpiryTime),
});
// Here null is a value (no limit, no expiry) and an absent field is left as it is.
const UpdateBody = z.object({ uses_allowed: UsesAllowed.nullable().optional(), expiry_time: ExpiryTime.nullable().optional() });

/** Synapse's registration token admin API (MSC3231 tokens). */
export function adminRegistrationTokenRoutes(router: Router, { admin }: Services): void {
  const tokens = admin.registrationTokens;
  adminRoute(router, admin, 'GET', 'v1', '/registration_tokens', async ({ query }) => tokens.list(parseQuery(ListQuery, query).valid));
  adminRoute(router, admin, 'POST', 'v1', '/registration_tokens/new', async ({ body }) => tokens.create(parseBody(CreateBody, body)));
  adminRoute(router, admin, 'GET', 'v1', '/registration_tokens/:token', async ({ params }) => tokens.get(params.token!));
  adminRoute(router, admin, 'PUT', 'v1', '/registration_tokens/:token', async ({ params, body }) => {
    const b = parseBody(UpdateBody, body);
    const changes: RegistrationTokenChanges = {};
    if (b.uses_allowed !== undefined) changes.uses_allowed = b.uses_allowed;
    if (b.expiry_time !== undefined) changes.expiry_time = b.expiry_time;
    return tokens.update(params.token!, changes);
  });
  adminRoute(router, admin, 'DELETE', 'v1', '/registration_tokens/:token', async ({ params }) => {
    await tokens.delete(params.token!);
    return {};
  });
}
