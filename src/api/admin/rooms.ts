import { z } from 'zod';
import { optional, parseBody, parseQuery } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { ROOM_ORDERS } from '../../services/admin/rooms.js';
import { QueryBool, QueryInt, adminRoute } from './common.js';

const ListQuery = z.object({
  from: optional(QueryInt),
  limit: optional(QueryInt),
  order_by: optional(z.enum(ROOM_ORDERS)),
  dir: optional(z.enum(['f', 'b'])),
  search_term: optional(z.string().max(1000)),
  public_rooms: optional(QueryBool),
  empty_rooms: optional(QueryBool),
});

const DeleteBody = z.object({
  new_room_user_id: optional(z.string().max(512)),
  room_name: optional(z.string().max(1000)),
  message: optional(z.string().max(10_000)),
  block: optional(z.boolean()),
  purge: optional(z.boolean()),
  force_purge: optional(z.boolean()),
});

/** Synapse's room admin API: the list, one room, its members, and deleting it. */
export function adminRoomRoutes(router: Router, { admin }: Services): void {
  const rooms = admin.rooms;
  adminRoute(router, admin, 'GET', 'v1', '/rooms', async ({ query }) => {
    const q = parseQuery(ListQuery, query);
    return rooms.list({ ...q, from: q.from ?? 0, limit: q.limit ?? 100, order_by: q.order_by ?? 'name', dir: q.dir ?? 'f' });
  });
  adminRoute(router, admin, 'GET', 'v1', '/rooms/:roomId', async ({ params }) => rooms.details(params.roomId!));
  adminRoute(router, admin, 'GET', 'v1', '/rooms/:roomId/members', async ({ params }) => rooms.members(params.roomId!));
  adminRoute(router, admin, 'DELETE', 'v1', '/rooms/:roomId', async ({ params, body, requester }) => {
    const b = parseBody(DeleteBody, body);
    return rooms.delete(requester.userId, params.roomId!, { new_room_user_id: b.new_room_user_id, block: b.block ?? false, purge: b.purge ?? true, force_purge: b.force_purge ?? false });
  });
}
