import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { QueryInteger } from '../../http/common-schemas.js';
import { optional, parseBody, parseQuery } from '../../http/parse.js';
import type { RequestContext, Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { isRoomId } from '../../services/user-ids.js';

/** An optional string query parameter; empty counts as absent. */
const OptionalString = optional(z.string()).transform((value) => (value === '' ? undefined : value));

const PublicRoomsQuery = z.object({ limit: QueryInteger, since: OptionalString, server: OptionalString });
const ServerQuery = z.object({ server: OptionalString });

const PublicRoomsBody = z.object({
  limit: optional(z.number().int().nonnegative()),
  since: optional(z.string()).transform((value) => (value === '' ? undefined : value)),
  filter: optional(
    z.object({
      generic_search_term: optional(z.string().max(1024)),
      room_types: optional(z.array(z.string().nullable()).max(100)),
    }),
  ),
  include_all_networks: optional(z.boolean()),
  third_party_instance_id: optional(z.string()),
});

const Visibility = z.object({ visibility: optional(z.enum(['public', 'private'])) });

const UserSearch = z.object({
  search_term: z.string().max(1024),
  limit: optional(z.number().int()),
});

function roomIdParam(value: string | undefined): string {
  if (value === undefined || !isRoomId(value)) throw new MatrixError(400, 'M_INVALID_PARAM', 'Invalid room ID');
  return value;
}

/** The published room directory and the user directory. */
export function directoryRoutes(router: Router, { roomDirectory, userDirectory, config }: Services): void {
  // As Synapse: an access token is needed unless allow_public_rooms_without_auth says otherwise.
  const requireAuth = (ctx: RequestContext) => {
    if (!ctx.requester && !config.allow_public_rooms_without_auth) throw new MatrixError(401, 'M_MISSING_TOKEN', 'Missing access token');
  };

  router.optionallyAuthed('GET', '/publicRooms', async (ctx) => {
    requireAuth(ctx);
    const { limit, since, server } = parseQuery(PublicRoomsQuery, ctx.query);
    return roomDirectory.publicRooms({ limit, since, server });
  });
  router.optionallyAuthed('POST', '/publicRooms', async (ctx) => {
    requireAuth(ctx);
    const { server } = parseQuery(ServerQuery.loose(), ctx.query);
    const body = parseBody(PublicRoomsBody, ctx.body);
    // No application service publishes third-party network rooms here: such a list is empty.
    const thirdPartyOnly = body.third_party_instance_id !== undefined && !body.include_all_networks;
    return roomDirectory.publicRooms({ server, limit: body.limit, since: body.since, filter: body.filter, thirdPartyOnly });
  });

  router.public('GET', '/directory/list/room/:roomId', async ({ params }) => roomDirectory.visibility(roomIdParam(params.roomId)));
  router.authed('PUT', '/directory/list/room/:roomId', async ({ requester, params, body }) => {
    const roomId = roomIdParam(params.roomId);
    const { visibility } = parseBody(Visibility, body);
    await roomDirectory.setVisibility(requester, roomId, visibility ?? 'public');
    return {};
  });

  router.authed('POST', '/user_directory/search', async ({ requester, body }) => {
    const { search_term: term, limit } = parseBody(UserSearch, body);
    return userDirectory.search(requester.userId, term, limit);
  });
}
