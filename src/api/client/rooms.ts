import { z } from 'zod';
import { guestForbidden, MatrixError } from '../../errors.js';
import { JsonObject, UserId } from '../../http/common-schemas.js';
import { optional, parseBody } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { Requester } from '../../services/devices.js';
import type { Services } from '../../services/index.js';
import { isRoomId } from '../../services/user-ids.js';

const Reason = { reason: optional(z.string().max(2048)) };
const Target = z.object({ user_id: UserId, ...Reason });
const StateEvent = z.object({ type: z.string(), state_key: optional(z.string()), content: JsonObject });

const CreateRoom = z.object({
  visibility: optional(z.enum(['public', 'private'])),
  room_alias_name: optional(z.string().max(255)),
  name: optional(z.string().max(255)),
  topic: optional(z.string().max(4096)),
  invite: optional(z.array(UserId).max(1000)),
  invite_3pid: optional(z.array(JsonObject).max(0, 'third-party invites are not supported')),
  room_version: optional(z.string().max(64)),
  creation_content: optional(JsonObject),
  initial_state: optional(z.array(StateEvent).max(100)),
  preset: optional(z.enum(['private_chat', 'trusted_private_chat', 'public_chat'])),
  is_direct: optional(z.boolean()),
  power_level_content_override: optional(JsonObject),
});

/** A room ID from the path: M_INVALID_PARAM when it is not one. */
export function roomIdParam(value: string | undefined): string {
  if (value === undefined || !isRoomId(value)) throw new MatrixError(400, 'M_INVALID_PARAM', 'Invalid room ID');
  return value;
}

const Upgrade = z.object({
  new_version: z.string().max(64),
  // Room versions with additional creators (12) are not supported: ignored, as the spec says for the others.
  additional_creators: optional(z.array(UserId).max(100)),
});

export function roomRoutes(router: Router, { rooms, roomUpgrades }: Services): void {
  router.authed('POST', '/createRoom', async ({ requester, body }) => rooms.createRoom(requester.userId, parseBody(CreateRoom, body)));

  const join = async ({ userId, isGuest }: Requester, idOrAlias: string | undefined, body: unknown) => {
    const { reason } = parseBody(z.object({ ...Reason, third_party_signed: optional(JsonObject) }), body);
    if (idOrAlias === undefined || !(isRoomId(idOrAlias) || /^#[^:]+:.+$/.test(idOrAlias))) throw new MatrixError(400, 'M_INVALID_PARAM', 'Invalid room ID or alias');
    return { room_id: await rooms.join(userId, idOrAlias, reason, isGuest) };
  };
  router.authed('POST', '/join/:roomIdOrAlias', ({ requester, params, body }) => join(requester, params.roomIdOrAlias, body));
  router.authed('POST', '/rooms/:roomId/join', ({ requester, params, body }) => join(requester, params.roomId, body));

  router.authed('POST', '/rooms/:roomId/leave', async ({ requester, params, body }) => {
    const { reason } = parseBody(z.object(Reason), body);
    await rooms.leave(requester.userId, roomIdParam(params.roomId), requester.userId, reason);
    return {};
  });
  router.authed('POST', '/rooms/:roomId/invite', async ({ requester, params, body }) => {
    const { user_id: target, reason } = parseBody(Target, body);
    await rooms.invite(requester.userId, roomIdParam(params.roomId), target, reason);
    return {};
  });
  router.authed('POST', '/rooms/:roomId/kick', async ({ requester, params, body }) => {
    const { user_id: target, reason } = parseBody(Target, body);
    await rooms.leave(requester.userId, roomIdParam(params.roomId), target, reason);
    return {};
  });
  router.authed('POST', '/rooms/:roomId/ban', async ({ requester, params, body }) => {
    const { user_id: target, reason } = parseBody(Target, body);
    await rooms.ban(requester.userId, roomIdParam(params.roomId), target, reason);
    return {};
  });
  router.authed('POST', '/rooms/:roomId/unban', async ({ requester, params, body }) => {
    const { user_id: target, reason } = parseBody(Target, body);
    await rooms.leave(requester.userId, roomIdParam(params.roomId), target, reason, true);
    return {};
  });
  router.authed('POST', '/rooms/:roomId/forget', async ({ requester, params }) => {
    await rooms.forget(requester.userId, roomIdParam(params.roomId));
    return {};
  });

  router.authed('POST', '/rooms/:roomId/upgrade', async ({ requester, params, body }) => {
    if (requester.isGuest) throw guestForbidden('Guests cannot upgrade rooms');
    return { replacement_room: await roomUpgrades.upgrade(requester.userId, roomIdParam(params.roomId), parseBody(Upgrade, body).new_version) };
  });

  router.authed('PUT', '/rooms/:roomId/send/:type/:txnId', async ({ requester, params, body }) => ({
    event_id: await rooms.send(requester, roomIdParam(params.roomId), params.type!, parseBody(JsonObject, body), params.txnId!),
  }));
  router.authed('PUT', '/rooms/:roomId/redact/:eventId/:txnId', async ({ requester, params, body }) => {
    const { reason } = parseBody(z.object(Reason), body);
    return { event_id: await rooms.redact(requester, roomIdParam(params.roomId), params.eventId!, reason, params.txnId!) };
  });
  const putState = async (requester: Parameters<typeof rooms.setState>[0], roomId: string | undefined, type: string, stateKey: string, body: unknown) => ({
    event_id: await rooms.setState(requester, roomIdParam(roomId), type, stateKey, parseBody(JsonObject, body)),
  });
  router.authed('PUT', '/rooms/:roomId/state/:type', ({ requester, params, body }) => putState(requester, params.roomId, params.type!, '', body));
  router.authed('PUT', '/rooms/:roomId/state/:type/:stateKey', ({ requester, params, body }) => putState(requester, params.roomId, params.type!, params.stateKey ?? '', body));
}

const Alias = z.string().regex(/^#[^:\s]+:.+$/, 'must be a room alias').max(255);

export function aliasRoutes(router: Router, { rooms }: Services): void {
  const aliasParam = (value: string | undefined) => {
    const parsed = Alias.safeParse(value);
    if (!parsed.success) throw new MatrixError(400, 'M_INVALID_PARAM', 'Invalid room alias');
    return parsed.data;
  };
  router.public('GET', '/directory/room/:alias', async ({ params }) => rooms.aliasLookup(aliasParam(params.alias)));
  router.authed('PUT', '/directory/room/:alias', async ({ requester, params, body }) => {
    const { room_id: roomId } = parseBody(z.object({ room_id: z.string() }), body);
    await rooms.addAlias(requester.userId, aliasParam(params.alias), roomIdParam(roomId));
    return {};
  });
  router.authed('DELETE', '/directory/room/:alias', async ({ requester, params }) => {
    await rooms.deleteAlias(requester.userId, aliasParam(params.alias));
    return {};
  });
}
