import { z } from 'zod';
import { guestForbidden, MatrixError } from '../../errors.js';
import { JsonObject, UserId } from '../../http/common-schemas.js';
import { optional, parseBody } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { Requester } from '../../services/devices.js';
import type { Services } from '../../services/index.js';
import { isRoomId } from '../../services/user-ids.js';
import { isObject } from '../../validate.js';

const Reason = { reason: optional(z.string().max(2048)) };
const Target = z.object({ user_id: UserId, ...Reason });
/** The second form of POST /rooms/{roomId}/invite, and an entry of createRoom's invite_3pid. */
const ThreepidInvite = z.object({
  id_server: z.string().min(1).max(255),
  id_access_token: z.string().min(1).max(1024),
  medium: z.string().min(1).max(32),
  address: z.string().min(1).max(512),
});
const StateEvent = z.object({ type: z.string(), state_key: optional(z.string()), content: JsonObject });

const CreateRoom = z.object({
  visibility: optional(z.enum(['public', 'private'])),
  room_alias_name: optional(z.string().max(255)),
  name: optional(z.string().max(255)),
  topic: optional(z.string().max(4096)),
  invite: optional(z.array(UserId).max(1000)),
  invite_3pid: optional(z.array(ThreepidInvite).max(20)),
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

export function roomRoutes(router: Router, { rooms, roomUpgrades, thirdPartyInvites }: Services): void {
  router.authed('POST', '/createRoom', async ({ requester, body }) => {
    const { invite_3pid: threepidInvites, ...request } = parseBody(CreateRoom, body);
    const created = await rooms.createRoom(requester.userId, request);
    // As Synapse: once the room exists, each through its identity server.
    for (const invite of threepidInvites ?? []) await thirdPartyInvites.invite(requester.userId, created.room_id, invite);
    return created;
  });

  const join = async ({ userId, isGuest }: Requester, idOrAlias: string | undefined, body: unknown) => {
    const { reason, third_party_signed: proof } = parseBody(z.object({ ...Reason, third_party_signed: optional(JsonObject) }), body);
    if (idOrAlias === undefined || !(isRoomId(idOrAlias) || /^#[^:]+:.+$/.test(idOrAlias))) throw new MatrixError(400, 'M_INVALID_PARAM', 'Invalid room ID or alias');
    if (proof) await thirdPartyInvites.joinWithProof(userId, isRoomId(idOrAlias) ? idOrAlias : (await rooms.aliasLookup(idOrAlias)).room_id, proof);
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
    const roomId = roomIdParam(params.roomId);
    // The third-party form names no user; the first form is parsed otherwise, for its errors.
    if (isObject(body) && body.user_id === undefined && (body.medium !== undefined || body.address !== undefined || body.id_server !== undefined)) {
      await thirdPartyInvites.invite(requester.userId, roomId, parseBody(ThreepidInvite, body));
      return {};
    }
    const { user_id: target, reason } = parseBody(Target, body);
    await rooms.invite(requester.userId, roomId, target, reason);
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

const FEDERATION_PREFIX = ['/_matrix/federation/v1'];

/**
 * The identity server's call once an address with pending third-party invites is bound (spec
 * server-server API, PUT /3pid/onbind; POST too, which Synapse serves and sytest's identity server
 * sends). It takes no authentication: each invite's proof is checked against its room's keys.
 */
export function thirdPartyBindRoutes(router: Router, { thirdPartyInvites }: Services): void {
  const onBind = async ({ body }: { body: unknown }) => {
    await thirdPartyInvites.onBind(parseBody(JsonObject, body));
    return {};
  };
  router.public('PUT', '/3pid/onbind', onBind, { prefixes: FEDERATION_PREFIX });
  router.public('POST', '/3pid/onbind', onBind, { prefixes: FEDERATION_PREFIX });
}
