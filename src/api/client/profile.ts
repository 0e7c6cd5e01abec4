import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { AvatarUrl, Displayname } from '../../http/common-schemas.js';
import { parseBody } from '../../http/parse.js';
import type { Handler, Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';

/** Each field's PUT body: the field itself, required; null clears it. */
const FieldBodies = {
  displayname: z.object({ displayname: Displayname.nullable() }).transform((body) => body.displayname),
  avatar_url: z.object({ avatar_url: AvatarUrl.nullable() }).transform((body) => body.avatar_url),
};

export function profileRoutes(router: Router, { profiles }: Services): void {
  // The access token is read only when the lookup limits need to know who asks (as Synapse).
  const get = (path: string, handler: Handler) => (profiles.lookupsNeedRequester ? router.optionallyAuthed('GET', path, handler) : router.public('GET', path, handler));
  get('/profile/:userId', async ({ params, requester }) => profiles.lookup(requester?.userId, params.userId!));

  for (const field of ['displayname', 'avatar_url'] as const) {
    get(`/profile/:userId/${field}`, async ({ params, requester }) => {
      const profile = await profiles.lookup(requester?.userId, params.userId!);
      if (profile[field] === undefined) throw new MatrixError(404, 'M_NOT_FOUND', `The user has no ${field}`);
      return { [field]: profile[field] };
    });
    router.authed('PUT', `/profile/:userId/${field}`, async ({ params, body, requester }) => {
      await profiles.set(requester.userId, params.userId!, field, parseBody(FieldBodies[field], body));
      return {};
    });
  }
}
