import { z } from 'zod';
import { missingParam } from '../../errors.js';
import { refuseWith } from '../../http/parse.js';
import type { AuthedContext, Handler, Router } from '../../http/router.js';
import type { AdminServices } from '../../services/admin/index.js';

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/**
 * An admin API route at /_synapse/admin/{version}{path}: an access token is required (401
 * M_MISSING_TOKEN without one) and its owner must be a server admin (403 M_FORBIDDEN), checked
 * before anything of the request is read.
 */
export function adminRoute(router: Router, admin: AdminServices, method: Method, version: 'v1' | 'v2', path: string, handler: Handler<AuthedContext>): void {
  router.authed(
    method,
    path,
    async (ctx) => {
      await admin.requireAdmin(ctx.requester);
      return handler(ctx);
    },
    { prefixes: [`/_synapse/admin/${version}`] },
  );
}

/** A boolean query parameter as Synapse reads one: `true` or `false`. */
export const QueryBool = z.enum(['true', 'false']).transform((value) => value === 'true');

/** A non-negative integer query parameter. */
export const QueryInt = z
  .string()
  .regex(/^\d{1,15}$/, 'must be a non-negative integer')
  .transform(Number);

/** A required query parameter that may not be empty. */
export const RequiredQueryString = (name: string) => z.string().refine((value) => value !== '', refuseWith(() => missingParam(name)));
