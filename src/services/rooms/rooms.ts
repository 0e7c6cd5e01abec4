import type { Clock } from '../../clock.js';
import type { Config } from '../../config/index.js';
import { randomLetters } from '../../crypto/tokens.js';
import { forbidden, guestForbidden, MatrixError, notFound } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import { txnKeyOf } from '../../storage/events.js';
import { isObject, type JsonObject } from '../../validate.js';
import type { Requester } from '../devices.js';
import { PublicationRules } from '../directory/publication-rules.js';
import type { RateLimiter } from '../ratelimiter.js';
import { canRedact, powerLevelOf, requiredPowerLevel } from './auth-rules.js';
import { canonicalJson, checkCanonicalNumbers } from './canonical-json.js';
import { currentStateEvents, TxnTaken, type EventCreator, type EventDraft, type RoomWrite } from './event-creator.js';
import { isSupportedRoomVersion, stateKeyOf, type RoomVersionId } from './pdu.js';
import { initialPowerLevels, PRESETS, type RoomPreset as Preset } from './power-levels.js';

export interface CreateRoomRequest {
  visibility?: 'public' | 'private';
  room_alias_name?: string;
  name?: string;
  topic?: string;
  invite?: string[];
  room_version?: string;
  creation_content?: JsonObject;
  initial_state?: { type: string; state_key?: string; content: JsonObject }[];
  preset?: Preset;
  is_direct?: boolean;
  power_level_content_override?: JsonObject;
}

export const unsupportedRoomVersion = (version: string) => new MatrixError(400, 'M_UNSUPPORTED_ROOM_VERSION', `Room version ${version} is not supported by this server`);

/** The longest `type` or `state_key` the spec allows, in bytes. */
const MAX_KEY_BYTES = 255;

/** Room creation, membership, messages, state and redactions: every write a client asks of a room. */
export class RoomService {
  private readonly publication: PublicationRules;
  /**
   * Awaited by a join, once committed, when a local user newly joined a room whose m.room.create
   * names a `predecessor` room (a room upgrade's replacement): copies what follows them there.
   */
  readonly joinedReplacement: ((userId: string, roomId: string, predecessorId: string) => Promise<void>)[] = [];

  constructor(
    private readonly store: Store,
    private readonly creator: EventCreator,
    private readonly clock: Clock,
    private readonly config: Config,
    private readonly limiter: RateLimiter,
  ) {
    this.publication = new PublicationRules(config);
  }

  private get serverName(): string {
    return this.config.server_name;
  }

  isLocalUser(userId: string): boolean {
    return userId.endsWith(`:${this.serverName}`);
  }

  /** The room a room ID or alias names; M_NOT_FOUND for an unknown alias. */
  async resolveRoom(roomIdOrAlias: string): Promise<string> {
    if (!roomIdOrAlias.startsWith('#')) return roomIdOrAlias;
    const roomId = await this.store.rooms.aliasRoom(roomIdOrAlias);
    if (!roomId) throw notFound('Room alias not found');
    return roomId;
  }

  /** `populate` writes more into the new room, last, in the same transaction (a room upgrade's copied state). */
  async createRoom(userId: string, request: CreateRoomRequest, populate?: (room: RoomWrite) => Promise<void>): Promise<{ room_id: string; room_alias?: string }> {
    const version = request.room_version ?? this.config.default_room_version;
    if (!isSupportedRoomVersion(version)) throw unsupportedRoomVersion(version);
    const preset: Preset = request.preset ?? (request.visibility === 'public' ? 'public_chat' : 'private_chat');
    const invitees = [...new Set(request.invite ?? [])].filter((id) => id !== userId);
    let alias: string | undefined;
    if (request.room_alias_name !== undefined) {
      alias = `#${request.room_alias_name}:${this.serverName}`;
      if (/[:\s]/.test(request.room_alias_name) || Buffer.byteLength(alias) > 255) throw new MatrixError(400, 'M_INVALID_PARAM', 'Invalid room alias name');
      if (await this.store.rooms.aliasRoom(alias)) throw new MatrixError(400, 'M_ROOM_IN_USE', 'Room alias already taken');
    }
    checkCanonicalNumbers(request.creation_content ?? {}, 'creation_content');
    checkCanonicalNumbers(request.power_level_content_override ?? {}, 'power_level_content_override');
    for (const event of request.initial_state ?? []) checkCanonicalNumbers(event.content, 'initial_state');

    const roomId = `!${randomLetters(18)}:${this.serverName}`;
    const profile = await this.profileContent(userId);
    const inviteeProfiles = new Map<string, JsonObject>();
    for (const invitee of invitees) inviteeProfiles.set(invitee, await this.profileContent(invitee));
    const initialState = new Map<string, EventDraft>();
    for (const event of request.initial_state ?? []) initialState.set(stateKeyOf(event.type, event.state_key ?? ''), { type: event.type, state_key: event.state_key ?? '', content: event.content });
    const takeInitial = (type: string): EventDraft | undefined => {
      const key = stateKeyOf(type, '');
      const draft = initialState.get(key);
      initialState.delete(key);
      return draft;
    };

    await this.creator.create({ roomId, version, creator: userId }, async (room) => {
      const createContent: JsonObject = { ...(request.creation_content ?? {}), room_version: version };
      if (version === '10') createContent.creator = userId;
      else delete createContent.creator;
      await room.append(userId, { type: 'm.room.create', state_key: '', content: createContent });
      await room.append(userId, { type: 'm.room.member', state_key: userId, content: { membership: 'join', ...profile } });
      const plFromInitial = takeInitial('m.room.power_levels');
      const powerLevels = plFromInitial
        ? { ...plFromInitial.content, ...(request.power_level_content_override ?? {}) }
        : initialPowerLevels({ creator: userId, preset, invitees, override: request.power_level_content_override });
      await room.append(userId, { type: 'm.room.power_levels', state_key: '', content: powerLevels });
      if (alias) {
        if (!(await room.store.rooms.addAlias(alias, roomId, userId, this.clock.now()))) throw new MatrixError(400, 'M_ROOM_IN_USE', 'Room alias already taken');
        await room.append(userId, { type: 'm.room.canonical_alias', state_key: '', content: { alias } });
      }
      const presetState = PRESETS[preset];
      for (const [type, content] of [
        ['m.room.join_rules', { join_rule: presetState.joinRule }],
        ['m.room.history_visibility', { history_visibility: presetState.historyVisibility }],
        ['m.room.guest_access', presetState.guestAccess === undefined ? undefined : { guest_access: presetState.guestAccess }],
      ] as const) {
        const draft = takeInitial(type) ?? (content === undefined ? undefined : { type, state_key: '', content });
        if (draft) await room.append(userId, draft);
      }
      for (const draft of initialState.values()) await room.append(userId, draft);
      if (request.name !== undefined) await room.append(userId, { type: 'm.room.name', state_key: '', content: { name: request.name } });
      if (request.topic !== undefined) await room.append(userId, { type: 'm.room.topic', state_key: '', content: { topic: request.topic } });
      for (const invitee of invitees) {
        await room.append(userId, { type: 'm.room.member', state_key: invitee, content: { membership: 'invite', ...inviteeProfiles.get(invitee), ...(request.is_direct ? { is_direct: true } : {}) } });
      }
      // As Synapse: a room the publication rules refuse is still created, only not published.
      if (request.visibility === 'public' && this.publication.allows(userId, roomId, alias ? [alias] : [])) await room.store.rooms.setPublic(roomId, true);
      if (populate) await populate(room);
    });
    return alias ? { room_id: roomId, room_alias: alias } : { room_id: roomId };
  }

  async profileContent(userId: string): Promise<JsonObject> {
    const user = this.isLocalUser(userId) ? await this.store.users.get(userId) : undefined;
    const content: JsonObject = {};
    if (user?.displayname) content.displayname = user.displayname;
    if (user?.avatar_url) content.avatar_url = user.avatar_url;
    return content;
  }

  /** `guest`: the user is a guest, who may join only rooms whose m.room.guest_access is `can_join`. */
  async join(userId: string, roomIdOrAlias: string, reason?: string, guest = false): Promise<string> {
    const roomId = await this.resolveRoom(roomIdOrAlias);
    if (await this.store.adminRooms.isBlocked(roomId)) throw forbidden('This room has been blocked on this server');
    const profile = await this.profileContent(userId);
    const content: JsonObject = { membership: 'join', ...profile, ...withReason(reason) };
    const predecessor = await this.creator.write(
      roomId,
      async (room) => {
        if (guest) await requireGuestAccess(room);
        // Joining again with nothing changed adds no event (as setting the same state again does not).
        const existing = await room.state('m.room.member', userId);
        if (existing && existing.sender === userId && canonicalJson(existing.content) === canonicalJson(content)) return undefined;
        await room.append(userId, { type: 'm.room.member', state_key: userId, content });
        return existing?.content.membership === 'join' ? undefined : predecessorOf(room);
      },
      'not-found',
    );
    if (predecessor !== undefined) await this.afterJoiningReplacement(userId, roomId, predecessor);
    return roomId;
  }

  private async afterJoiningReplacement(userId: string, roomId: string, predecessorId: string): Promise<void> {
    if (!this.isLocalUser(userId)) return;
    for (const hook of this.joinedReplacement) await hook(userId, roomId, predecessorId);
  }

  /**
   * Writes the user's global profile into their member event in a room they are joined to, as
   * Synapse does on a profile change: a join with the profile's displayname and avatar_url and
   * nothing else (a per-room name is overwritten). Nothing when they are not joined, or when their
   * member event already says so; M_FORBIDDEN when the room's rules do not let them.
   */
  async refreshProfile(userId: string, roomId: string): Promise<void> {
    if (await this.store.adminRooms.isBlocked(roomId)) throw forbidden('This room has been blocked on this server');
    const content: JsonObject = { membership: 'join', ...(await this.profileContent(userId)) };
    await this.creator.write(roomId, async (room) => {
      const existing = await room.state('m.room.member', userId);
      if (existing?.content.membership !== 'join') return;
      if (existing.sender === userId && canonicalJson(existing.content) === canonicalJson(content)) return;
      await room.append(userId, { type: 'm.room.member', state_key: userId, content });
    });
  }

  async invite(sender: string, roomId: string, target: string, reason?: string): Promise<void> {
    if (this.isLocalUser(target) && !(await this.store.users.get(target))) throw notFound('Unknown user');
    const profile = await this.profileContent(target);
    await this.creator.write(roomId, async (room) => {
      await this.requireJoined(room, sender);
      await room.append(sender, { type: 'm.room.member', state_key: target, content: { membership: 'invite', ...profile, ...withReason(reason) } });
    });
  }

  /** Leave, kick (target is someone else), reject an invite, or unban (with `fromBan`). */
  async leave(sender: string, roomId: string, target: string, reason?: string, fromBan = false): Promise<void> {
    await this.creator.write(roomId, async (room) => {
      const current = (await room.state('m.room.member', target))?.content.membership;
      if (fromBan && current !== 'ban') throw forbidden('The user is not banned');
      if (!fromBan && target !== sender && current !== 'join' && current !== 'invite' && current !== 'knock') throw forbidden('The user is not in the room');
      if (target === sender && current !== 'join' && current !== 'invite' && current !== 'knock') {
        if (current === undefined && !(await room.store.rooms.member(roomId, sender))) throw forbidden('You are not in the room');
        if (current === 'leave' || current === 'ban') return;
      }
      await room.append(sender, { type: 'm.room.member', state_key: target, content: { membership: 'leave', ...withReason(reason) } });
    });
  }

  async ban(sender: string, roomId: string, target: string, reason?: string): Promise<void> {
    await this.creator.write(roomId, (room) => room.append(sender, { type: 'm.room.member', state_key: target, content: { membership: 'ban', ...withReason(reason) } }));
  }

  async forget(userId: string, roomId: string): Promise<void> {
    const member = await this.store.rooms.member(roomId, userId);
    if (member && (member.membership === 'join' || member.membership === 'invite')) throw new MatrixError(400, 'M_UNKNOWN', 'You must leave the room before forgetting it');
    if (member) await this.store.rooms.forget(roomId, userId);
  }

  /** A message-like event; idempotent per device and transaction ID. */
  async send(requester: Requester, roomId: string, type: string, content: JsonObject, txnId: string): Promise<string> {
    checkEventType(type);
    checkCanonicalNumbers(content, 'content');
    return this.withTxn(requester, roomId, `send ${roomId} ${type}`, txnId, async (room) => {
      await this.requireJoined(room, requester.userId);
      return (await room.append(requester.userId, { type, content })).event_id;
    });
  }

  async redact(requester: Requester, roomId: string, eventId: string, reason: string | undefined, txnId: string): Promise<string> {
    return this.withTxn(requester, roomId, `redact ${roomId} ${eventId}`, txnId, async (room) => {
      await this.requireJoined(room, requester.userId);
      const target = await room.store.events.get(eventId);
      if (!target || target.room_id !== roomId) throw notFound('Event not found');
      const state = await room.stateOf([stateKeyOf('m.room.create', ''), stateKeyOf('m.room.power_levels', '')]);
      if (!canRedact(requester.userId, target.sender, state, room.version)) throw forbidden('You may not redact this event');
      return (await room.append(requester.userId, { type: 'm.room.redaction', content: withReason(reason), redacts: eventId })).event_id;
    });
  }

  /** Sets a state event; the same content from the same sender again answers the existing event. */
  async setState(requester: Requester, roomId: string, type: string, stateKey: string, content: JsonObject): Promise<string> {
    checkEventType(type);
    if (Buffer.byteLength(stateKey) > MAX_KEY_BYTES) throw new MatrixError(400, 'M_TOO_LARGE', 'state_key is too long');
    checkCanonicalNumbers(content, 'content');
    if (type === 'm.room.canonical_alias') await this.checkCanonicalAlias(roomId, content);
    if (type === 'm.room.member' && content.membership === 'join' && (await this.store.adminRooms.isBlocked(roomId))) throw forbidden('This room has been blocked on this server');
    await this.limiter.take(`message:${requester.userId}`, this.config.rc_message);
    // Read outside the room's transaction: on SQLite the root store waits for the one connection.
    const profile = type === 'm.room.member' && (content.membership === 'join' || content.membership === 'invite') ? await this.profileContent(stateKey) : {};
    const written = await this.creator.write(roomId, async (room) => {
      const existing = await room.state(type, stateKey);
      if (existing && existing.sender === requester.userId && canonicalJson(existing.content) === canonicalJson(content)) return { eventId: existing.event_id };
      if (type === 'm.room.member') {
        const membership = content.membership;
        if (membership === 'join' && stateKey !== requester.userId) throw forbidden('You may only join as yourself');
        if (membership === 'join' && requester.isGuest) await requireGuestAccess(room);
        content = { ...profile, ...content };
      } else {
        await this.requireJoined(room, requester.userId);
      }
      const eventId = (await room.append(requester.userId, { type, state_key: stateKey, content })).event_id;
      if (type === 'm.room.guest_access' && stateKey === '' && content.guest_access !== 'can_join') await this.removeGuests(room);
      const newlyJoined = type === 'm.room.member' && content.membership === 'join' && existing?.content.membership !== 'join';
      return { eventId, predecessor: newlyJoined ? await predecessorOf(room) : undefined };
    });
    if (written.predecessor !== undefined) await this.afterJoiningReplacement(requester.userId, roomId, written.predecessor);
    return written.eventId;
  }

  /** Guest access withdrawn: every guest in the room leaves it (the spec's MUST), in the same write. */
  private async removeGuests(room: RoomWrite): Promise<void> {
    for (const guest of await room.store.rooms.joinedGuests(room.room.room_id)) {
      await room.append(guest, { type: 'm.room.member', state_key: guest, content: { membership: 'leave' } });
    }
  }

  private async checkCanonicalAlias(roomId: string, content: JsonObject): Promise<void> {
    const aliases: unknown[] = [];
    if (content.alias !== undefined) aliases.push(content.alias);
    if (content.alt_aliases !== undefined) {
      if (!Array.isArray(content.alt_aliases)) throw new MatrixError(400, 'M_INVALID_PARAM', 'alt_aliases must be a list');
      aliases.push(...(content.alt_aliases as unknown[]));
    }
    for (const alias of aliases) {
      if (typeof alias !== 'string' || !/^#[^:]+:.+$/.test(alias)) throw new MatrixError(400, 'M_INVALID_PARAM', 'Invalid alias');
      if (!alias.endsWith(`:${this.serverName}`)) continue;
      if ((await this.store.rooms.aliasRoom(alias)) !== roomId) throw new MatrixError(400, 'M_BAD_ALIAS', `${alias} does not point to this room`);
    }
  }

  private async requireJoined(room: RoomWrite, userId: string): Promise<void> {
    const membership = (await room.state('m.room.member', userId))?.content.membership;
    if (membership !== 'join') throw forbidden(`${userId} is not in the room`);
  }

  private async withTxn(requester: Requester, roomId: string, purpose: string, txnId: string, fn: (room: RoomWrite) => Promise<string>): Promise<string> {
    const key = txnKeyOf(purpose, txnId);
    const done = await this.store.events.txnEvent(requester.userId, requester.deviceId, key);
    if (done) return done;
    try {
      return await this.creator.write(
        roomId,
        async (room) => {
          const eventId = await fn(room);
          room.recordTxn({ userId: requester.userId, deviceId: requester.deviceId, txnKey: key, now: this.clock.now() });
          return eventId;
        },
        'forbidden',
        // In the write's transaction: one commit per send, not two.
        (store) => this.limiter.take(`message:${requester.userId}`, this.config.rc_message, store.rateLimits),
      );
    } catch (err) {
      // The same transaction ID sent again while the first was being written: the first's event.
      if (!(err instanceof TxnTaken)) throw err;
      const raced = await this.store.events.txnEvent(requester.userId, requester.deviceId, key);
      if (!raced) throw err;
      return raced;
    }
  }

  async aliasLookup(alias: string): Promise<{ room_id: string; servers: string[] }> {
    const roomId = await this.store.rooms.aliasRoom(alias);
    if (!roomId) throw notFound(`Room alias ${alias} not found`);
    return { room_id: roomId, servers: [this.serverName] };
  }

  async addAlias(userId: string, alias: string, roomId: string): Promise<void> {
    if (!alias.endsWith(`:${this.serverName}`)) throw new MatrixError(400, 'M_INVALID_PARAM', 'Aliases must be on this server');
    const member = await this.store.rooms.member(roomId, userId);
    if (!(await this.store.rooms.get(roomId))) throw notFound('Unknown room');
    if (member?.membership !== 'join') throw forbidden('You must be in the room to give it an alias');
    if (!(await this.store.rooms.addAlias(alias, roomId, userId, this.clock.now()))) throw new MatrixError(409, 'M_UNKNOWN', `Room alias ${alias} already exists`);
  }

  /** Removes an alias: its creator or a room member with the power to set m.room.canonical_alias may. */
  async deleteAlias(userId: string, alias: string): Promise<void> {
    const entry = await this.store.rooms.aliasCreator(alias);
    if (!entry) throw notFound(`Room alias ${alias} not found`);
    if (entry.creator !== userId) {
      const room = await this.store.rooms.get(entry.room_id);
      const state = await currentStateEvents(this.store, entry.room_id, [stateKeyOf('m.room.create', ''), stateKeyOf('m.room.power_levels', ''), stateKeyOf('m.room.member', userId)]);
      const joined = state.get(stateKeyOf('m.room.member', userId))?.content.membership === 'join';
      const version = (room?.room_version ?? '11') as RoomVersionId;
      if (!joined || powerLevelOf(userId, state, version) < requiredPowerLevel('m.room.canonical_alias', true, state)) throw forbidden('You may not remove this alias');
    }
    await this.store.rooms.deleteAlias(alias);
    await this.dropFromCanonicalAlias(userId, entry.room_id, alias);
  }

  /**
   * Takes a deleted alias out of the room's m.room.canonical_alias, as the spec lets a server do: sent
   * by the deleting user when the room's rules allow them, otherwise left as it is (the deletion stands).
   */
  private async dropFromCanonicalAlias(userId: string, roomId: string, alias: string): Promise<void> {
    const without = (content: JsonObject): JsonObject | undefined => {
      const next = { ...content };
      if (next.alias === alias) delete next.alias;
      if (Array.isArray(next.alt_aliases)) next.alt_aliases = next.alt_aliases.filter((a) => a !== alias);
      return canonicalJson(next) === canonicalJson(content) ? undefined : next;
    };
    const key = stateKeyOf('m.room.canonical_alias', '');
    const current = (await currentStateEvents(this.store, roomId, [key])).get(key);
    if (!current || !without(current.content)) return;
    await this.creator
      .write(roomId, async (room) => {
        const existing = await room.state('m.room.canonical_alias');
        const content = existing && without(existing.content);
        if (content) await room.append(userId, { type: 'm.room.canonical_alias', state_key: '', content });
      })
      .catch((err: unknown) => {
        if (!(err instanceof MatrixError && err.errcode === 'M_FORBIDDEN')) throw err;
      });
  }

  /** Leaves every room the user is joined to or invited to (deactivation). */
  async leaveAll(userId: string): Promise<void> {
    for (const member of await this.store.rooms.roomsOf(userId, ['join', 'invite', 'knock'])) {
      await this.creator.write(member.room_id, (room) => room.append(userId, { type: 'm.room.member', state_key: userId, content: { membership: 'leave' } })).catch(() => undefined);
    }
  }
}

/** The room its m.room.create names as `predecessor` (the room it replaced in an upgrade), if any. */
async function predecessorOf(room: RoomWrite): Promise<string | undefined> {
  const predecessor = (await room.state('m.room.create'))?.content.predecessor;
  return isObject(predecessor) && typeof predecessor.room_id === 'string' ? predecessor.room_id : undefined;
}

/** Guests join only rooms that let them: m.room.guest_access `can_join`. */
async function requireGuestAccess(room: RoomWrite): Promise<void> {
  const guestAccess = (await room.state('m.room.guest_access', ''))?.content.guest_access;
  if (guestAccess !== 'can_join') throw guestForbidden('Guests may not join this room');
}

function withReason(reason: string | undefined): JsonObject {
  return reason === undefined ? {} : { reason };
}

function checkEventType(type: string): void {
  if (type.length === 0 || Buffer.byteLength(type) > MAX_KEY_BYTES) throw new MatrixError(400, 'M_TOO_LARGE', 'Event type must be 1 to 255 bytes');
}

export type { RoomVersionId };
