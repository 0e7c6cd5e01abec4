import { MatrixError } from '../../errors.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { objectBody, type JsonObject } from '../../validate.js';

function fieldValue(body: JsonObject, field: string): string | null {
  const value = body[field];
  if (value === undefined) throw new MatrixError(400, 'M_MISSING_PARAM', `Missing parameter: ${field}`);
  if (value === null) return null;
  if (typeof value !== 'string') throw new MatrixError(400, 'M_BAD_JSON', `'${field}' must be a string`);
  return value;
}

export function profileRoutes(router: Router, { accounts }: Services): void {
  router.public('GET', '/profile/:userId', async ({ params }) => accounts.getProfile(params.userId!));

  for (const field of ['displayname', 'avatar_url'] as const) {
    router.public('GET', `/profile/:userId/${field}`, async ({ params }) => {
      const profile = await accounts.getProfile(params.userId!);
      if (profile[field] === undefined) throw new MatrixError(404, 'M_NOT_FOUND', `The user has no ${field}`);
      return { [field]: profile[field] };
    });
    router.authed('PUT', `/profile/:userId/${field}`, async ({ params, body, requester }) => {
      await accounts.setProfileField(requester.userId, params.userId!, field, fieldValue(objectBody(body), field));
      return {};
    });
  }
}
