import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { AvatarUrl, Displayname, ThreepidAddress } from '../../http/common-schemas.js';
import { optional, parseBody, parseQuery, refuseWith } from '../../http/parse.js';
import { JsonReply } from '../../http/reply.js';
import { CLIENT_PREFIXES, type Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import type { UserOrder } from '../../storage/admin-users.js';
import { QueryBool, QueryInt, adminRoute } from './common.js';

/** Synapse's order_by values; those Myelin has no data for (every user alike) order by name. */
const USER_ORDERS = ['name', 'is_guest', 'admin', 'user_type', 'deactivated', 'shadow_banned', 'displayname', 'avatar_url', 'creation_ts', 'last_seen_ts', 'locked'] as const;
const SAME_FOR_EVERYONE = new Set<string>(['user_type', 'shadow_banned', 'locked']);

const ListQuery = z.object({
  from: optional(QueryInt),
  limit: optional(QueryInt),
  name: optional(z.string().max(1000)),
  user_id: optional(z.string().max(1000)),
  guests: optional(QueryBool),
  deactivated: optional(QueryBool),
  admins: optional(QueryBool),
  order_by: optional(z.enum(USER_ORDERS)),
  dir: optional(z.enum(['f', 'b'])),
});

const unsupported = (what: string) => refuseWith(() => new MatrixError(400, 'M_INVALID_PARAM', `${what} is not supported by this server`));

const UpsertBody = z.object({
  password: optional(z.string().max(512)),
  logout_devices: optional(z.boolean()),
  displayname: optional(Displayname),
  avatar_url: optional(AvatarUrl),
  threepids: optional(z.array(ThreepidAddress).max(100)),
  admin: optional(z.boolean()),
  deactivated: optional(z.boolean()),
  // Synapse's fields for what Myelin does not have: accepted only when they ask for nothing.
  external_ids: optional(z.array(z.unknown()).refine((ids) => ids.length === 0, unsupported('external_ids (single sign-on)'))),
  user_type: optional(z.string().refine(() => false, unsupported('user_type'))),
  locked: optional(z.boolean().refine((locked) => !locked, unsupported('Locking an account'))),
});

const DeactivateBody = z.object({ erase: optional(z.boolean()) });
const ResetPasswordBody = z.object({ new_password: z.string().max(512), logout_devices: optional(z.boolean()) });
const AdminBody = z.object({ admin: z.boolean() });
const LoginBody = z.object({ valid_until_ms: optional(z.number().int().nonnegative()) });

/** Synapse's user admin API: list, details, create or modify, deactivate, reset password, whois, 3PID lookup, admin flag, login as. */
export function adminUserRoutes(router: Router, { admin }: Services): void {
  const users = admin.users;

  adminRoute(router, admin, 'GET', 'v2', '/users', async ({ query }) => {
    const q = parseQuery(ListQuery, query);
    const orderBy = q.order_by === undefined || SAME_FOR_EVERYONE.has(q.order_by) ? 'name' : (q.order_by as UserOrder);
    return users.list({
      from: q.from ?? 0,
      limit: q.limit ?? 100,
      name: q.name,
      user_id: q.user_id,
      guests: q.guests ?? true,
      deactivated: q.deactivated ?? false,
      admins: q.admins,
      order_by: orderBy,
      dir: q.dir ?? 'f',
    });
  });

  adminRoute(router, admin, 'GET', 'v2', '/users/:userId', async ({ params }) => users.details(params.userId!));

  adminRoute(router, admin, 'PUT', 'v2', '/users/:userId', async ({ params, body, requester }) => {
    const { external_ids: _ids, user_type: _type, locked: _locked, ...changes } = parseBody(UpsertBody, body);
    const { created, user } = await users.upsert(requester, params.userId!, changes);
    return new JsonReply(created ? 201 : 200, user);
  });

  adminRoute(router, admin, 'POST', 'v1', '/deactivate/:userId', async ({ params, body }) => users.deactivate(params.userId!, parseBody(DeactivateBody, body).erase ?? false));

  adminRoute(router, admin, 'POST', 'v1', '/reset_password/:userId', async ({ params, body }) => {
    const { new_password: newPassword, logout_devices: logoutDevices } = parseBody(ResetPasswordBody, body);
    await users.resetPassword(params.userId!, newPassword, logoutDevices ?? true);
    return {};
  });

  // Anyone may look themselves up; others need an admin (as Synapse, and the spec's /admin/whois, have it).
  const whois = (path: string, prefixes: readonly string[]) =>
    router.authed('GET', path, async ({ params, requester }) => users.whois(requester, params.userId!, (r) => admin.requireAdmin(r)), { prefixes });
  whois('/whois/:userId', ['/_synapse/admin/v1']);
  whois('/admin/whois/:userId', CLIENT_PREFIXES);

  adminRoute(router, admin, 'GET', 'v1', '/threepid/:medium/users/:address', async ({ params }) => users.findByThreepid(params.medium!, params.address!));

  adminRoute(router, admin, 'GET', 'v1', '/users/:userId/admin', async ({ params }) => users.isAdmin(params.userId!));
  adminRoute(router, admin, 'PUT', 'v1', '/users/:userId/admin', async ({ params, body, requester }) => {
    await users.setAdmin(requester, params.userId!, parseBody(AdminBody, body).admin);
    return {};
  });

  adminRoute(router, admin, 'POST', 'v1', '/users/:userId/login', async ({ params, body, requester }) =>
    users.puppetToken(requester, params.userId!, parseBody(LoginBody, body).valid_until_ms),
  );

  adminRoute(router, admin, 'GET', 'v1', '/users/:userId/joined_rooms', async ({ params }) => users.joinedRooms(params.userId!));
}
