import { z } from 'zod';
import { badJson, invalidParam, MatrixError } from '../../errors.js';
import { QueryInteger } from '../../http/common-schemas.js';
import { optional, parseQuery } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import type { RoomEventFilter } from '../../services/rooms/room-reads.js';
import { parseFilter } from '../../services/sync/filters.js';
import { isRoomId } from '../../services/user-ids.js';
import { isObject } from '../../validate.js';

const MEMBERSHIPS = ['join', 'invite', 'knock', 'leave', 'ban'] as const;

/** An optional string parameter; empty counts as absent. */
const OptionalString = optional(z.string()).transform((value) => (value === '' ? undefined : value));

const MessagesQuery = z.object({
  dir: z.enum(['b', 'f']),
  from: OptionalString,
  to: OptionalString,
  limit: QueryInteger,
  filter: OptionalString,
});

const ContextQuery = z.object({ limit: QueryInteger, filter: OptionalString });

const MembersQuery = z.object({
  at: OptionalString,
  membership: optional(z.enum(MEMBERSHIPS)),
  not_membership: optional(z.enum(MEMBERSHIPS)),
});

const StateEventQuery = z.object({ format: optional(z.enum(['content', 'event'])) });

function roomIdParam(value: string | undefined): string {
  if (value === undefined || !isRoomId(value)) throw invalidParam('Invalid room ID');
  return value;
}

/**
 * The RoomEventFilter given as JSON in a query parameter, checked as sync checks a filter's
 * timeline part (the same schema), with problems named as in the filter itself.
 */
export function parseRoomEventFilter(param: string | undefined): RoomEventFilter | undefined {
  if (param === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(param);
  } catch {
    throw new MatrixError(400, 'M_NOT_JSON', 'The filter is not valid JSON');
  }
  return roomEventFilterOf(parsed);
}

/** A RoomEventFilter given as a JSON value, checked as sync checks a filter's timeline part. */
export function roomEventFilterOf(parsed: unknown): RoomEventFilter {
  if (!isObject(parsed)) throw badJson('The filter must be a JSON object');
  try {
    return parseFilter({ room: { timeline: parsed } }).room!.timeline!;
  } catch (err: unknown) {
    if (err instanceof MatrixError) throw new MatrixError(err.status, err.errcode, err.message.replace('room.timeline.', '').replace('room.timeline', '(root)'));
    throw err;
  }
}

/** Reading rooms: single events, state, /messages, /context, members and the user's joined rooms (the room initialSync is in legacy-events.ts). */
export function roomReadRoutes(router: Router, { roomReads: reads }: Services): void {
  router.authed('GET', '/rooms/:roomId/aliases', async ({ requester, params }) => ({ aliases: await reads.aliases(requester, roomIdParam(params.roomId)) }));

  router.authed('GET', '/joined_rooms', async ({ requester }) => ({ joined_rooms: await reads.joinedRooms(requester.userId) }));

  router.authed('GET', '/rooms/:roomId/event/:eventId', ({ requester, params }) => reads.event(requester, roomIdParam(params.roomId), params.eventId!));

  router.authed('GET', '/rooms/:roomId/state', ({ requester, params }) => reads.state(requester, roomIdParam(params.roomId)));
  const stateEvent = async (requester: Parameters<typeof reads.state>[0], roomId: string | undefined, type: string, stateKey: string, query: Record<string, string | undefined>) => {
    const { format } = parseQuery(StateEventQuery, query);
    const event = await reads.stateEvent(requester, roomIdParam(roomId), type, stateKey);
    return format === 'event' ? event : event.content;
  };
  router.authed('GET', '/rooms/:roomId/state/:type', ({ requester, params, query }) => stateEvent(requester, params.roomId, params.type!, '', query));
  router.authed('GET', '/rooms/:roomId/state/:type/:stateKey', ({ requester, params, query }) => stateEvent(requester, params.roomId, params.type!, params.stateKey ?? '', query));

  router.authed('GET', '/rooms/:roomId/messages', async ({ requester, params, query }) => {
    const { dir, from, to, limit, filter } = parseQuery(MessagesQuery, query);
    return reads.messages(requester, roomIdParam(params.roomId), { dir, from, to, limit, filter: parseRoomEventFilter(filter) });
  });

  router.authed('GET', '/rooms/:roomId/context/:eventId', async ({ requester, params, query }) => {
    const { limit, filter } = parseQuery(ContextQuery, query);
    return reads.context(requester, roomIdParam(params.roomId), params.eventId!, limit, parseRoomEventFilter(filter));
  });

  router.authed('GET', '/rooms/:roomId/members', async ({ requester, params, query }) => {
    const { at, membership, not_membership: notMembership } = parseQuery(MembersQuery, query);
    return { chunk: await reads.members(requester, roomIdParam(params.roomId), { at, membership, notMembership }) };
  });
  router.authed('GET', '/rooms/:roomId/joined_members', async ({ requester, params }) => ({ joined: await reads.joinedMembers(requester, roomIdParam(params.roomId)) }));
}
