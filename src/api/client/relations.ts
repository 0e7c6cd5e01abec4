import { z } from 'zod';
import { invalidParam } from '../../errors.js';
import { QueryBoolean, QueryInteger } from '../../http/common-schemas.js';
import { optional, parseQuery } from '../../http/parse.js';
import type { AuthedContext, Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { isRoomId } from '../../services/user-ids.js';

const V1 = { prefixes: ['/_matrix/client/v1'] };

/** An optional string parameter; empty counts as absent. */
const OptionalString = optional(z.string()).transform((value) => (value === '' ? undefined : value));

const RelationsQuery = z.object({
  from: OptionalString,
  to: OptionalString,
  limit: QueryInteger,
  dir: optional(z.enum(['b', 'f'])),
  recurse: optional(QueryBoolean),
});

const ThreadsQuery = z.object({
  include: optional(z.enum(['all', 'participated'])),
  from: OptionalString,
  limit: QueryInteger.refine((n) => n === undefined || n > 0, 'must be greater than zero'),
});

function roomIdParam(value: string | undefined): string {
  if (value === undefined || !isRoomId(value)) throw invalidParam('Invalid room ID');
  return value;
}

/** Event relationships (spec v1.10): a parent's children, and a room's threads. */
export function relationRoutes(router: Router, { relationReads }: Services): void {
  const relations = ({ requester, params, query }: AuthedContext, relType?: string, eventType?: string) => {
    const { from, to, limit, dir, recurse } = parseQuery(RelationsQuery, query);
    return relationReads.relations(requester, roomIdParam(params.roomId), params.eventId!, { relType, eventType, from, to, limit, dir: dir ?? 'b', recurse });
  };
  router.authed('GET', '/rooms/:roomId/relations/:eventId', (ctx) => relations(ctx), V1);
  router.authed('GET', '/rooms/:roomId/relations/:eventId/:relType', (ctx) => relations(ctx, ctx.params.relType), V1);
  router.authed('GET', '/rooms/:roomId/relations/:eventId/:relType/:eventType', (ctx) => relations(ctx, ctx.params.relType, ctx.params.eventType), V1);

  router.authed(
    'GET',
    '/rooms/:roomId/threads',
    ({ requester, params, query }) => {
      const { include, from, limit } = parseQuery(ThreadsQuery, query);
      return relationReads.threads(requester, roomIdParam(params.roomId), { include: include ?? 'all', from, limit });
    },
    V1,
  );
}
