/**
 * The authorisation rules of room versions 10 and 11 (spec content/rooms/v10.md and v11.md,
 * "Authorisation rules"), and the auth events selection (server-server-api.md "Auth events
 * selection"). Pure: no I/O, no hashing, no signatures.
 *
 * `authorize` checks an event against the room state *before* it. Rule numbers in the errors are
 * the spec's. Its only cryptography is rule 4.4.1.7's: a third-party invite's `signed` block checked
 * against the public keys of the room's m.room.third_party_invite event. What it leaves to its caller:
 * - rule 2 (the event's `auth_events` themselves: no duplicates, only selected keys, none rejected,
 *   same room). A caller that builds `auth_events` with `authEventIds` from the same state meets it.
 * - rule 4.2 (a member event with `join_authorised_via_users_server` must be signed by that
 *   user's server) and the signature of the sender's server: signatures are not seen here.
 *
 * Knocking is not supported on this server yet. Its rules are checked in the spec's order; where the
 * spec would allow, the event is refused with `unsupported` set.
 */
import type { JsonObject } from '../../validate.js';
import { isObject } from '../../validate.js';
import { verifyEd25519Signature } from './event-hash.js';
import { stateKeyOf, type RoomState, type RoomVersionId, type StateKey, type StoredEvent } from './pdu.js';

/** Flip to true once knocks are served (the knock endpoint, invite_state for knocks, sync's `knock` section). */
const KNOCKING_SUPPORTED = false;

/** An event refused by the authorisation rules. `rule` is the spec's rule number (e.g. "4.3.3"). */
export class AuthError extends Error {
  override readonly name = 'AuthError';

  constructor(
    readonly rule: string,
    reason: string,
    /** True when the spec would allow the event but this server does not support the feature. */
    readonly unsupported = false,
  ) {
    super(`${reason} (auth rule ${rule})`);
  }
}

/** What `authorize` reads of an event: it runs before the event is hashed, so there is no event_id. */
export interface AuthEvent {
  type: string;
  sender: string;
  content: JsonObject;
  state_key?: string;
  room_id: string;
  prev_events: readonly string[];
}

export type PowerLevelAction = 'invite' | 'kick' | 'ban' | 'redact';

const CREATE = 'm.room.create';
const MEMBER = 'm.room.member';
const POWER_LEVELS = 'm.room.power_levels';
const JOIN_RULES = 'm.room.join_rules';
const THIRD_PARTY_INVITE = 'm.room.third_party_invite';

/** The defaults of m.room.power_levels.yaml: with or without a power levels event, a missing key means these. */
const ACTION_DEFAULTS: Record<PowerLevelAction, number> = { invite: 0, kick: 50, ban: 50, redact: 50 };
const STATE_DEFAULT = 50;
const EVENTS_DEFAULT = 0;
const USERS_DEFAULT = 0;
const NOTIFICATION_DEFAULT = 50;
/** Rooms without a power levels event: the creator has 100 (v1-v11; m.room.power_levels.yaml). */
const CREATOR_DEFAULT = 100;

/** The power levels content properties that must be integers (rules 9.1 and 9.5). */
const LEVEL_KEYS = ['users_default', 'events_default', 'state_default', 'ban', 'redact', 'kick', 'invite'] as const;

// ---------------------------------------------------------------------------------------------
// Auth events selection

/**
 * The state keys an event's `auth_events` are drawn from (server-server-api.md "Auth events
 * selection"; v10 and v11 select the create event). The create event has none. Entries absent from
 * the state are simply not selected.
 */
export function authEventsSelection(type: string, sender: string, content: JsonObject, stateKey: string | undefined): StateKey[] {
  if (type === CREATE) return [];
  const keys = [stateKeyOf(CREATE, ''), stateKeyOf(POWER_LEVELS, ''), stateKeyOf(MEMBER, sender)];
  if (type === MEMBER && stateKey !== undefined) {
    keys.push(stateKeyOf(MEMBER, stateKey));
    const membership = content['membership'];
    if (membership === 'join' || membership === 'invite' || membership === 'knock') keys.push(stateKeyOf(JOIN_RULES, ''));
    if (membership === 'invite' && content['third_party_invite'] !== undefined) {
      const invite = content['third_party_invite'];
      const token = isObject(invite) && isObject(invite['signed']) ? invite['signed']['token'] : undefined;
      if (typeof token === 'string') keys.push(stateKeyOf(THIRD_PARTY_INVITE, token));
    }
    const authoriser = content['join_authorised_via_users_server'];
    // Restricted rooms exist from v8, so both v10 and v11 select the authoriser's member event.
    if (membership === 'join' && typeof authoriser === 'string') keys.push(stateKeyOf(MEMBER, authoriser));
  }
  return [...new Set(keys)];
}

/** The IDs of the selected auth events present in `state`, in selection order: an event's `auth_events`. */
export function authEventIds(event: Pick<AuthEvent, 'type' | 'sender' | 'content' | 'state_key'>, state: RoomState): string[] {
  const ids: string[] = [];
  for (const key of authEventsSelection(event.type, event.sender, event.content, event.state_key)) {
    const found = state.get(key);
    if (found) ids.push(found.event_id);
  }
  return ids;
}

// ---------------------------------------------------------------------------------------------
// State readers

function stateContent(state: RoomState, type: string, stateKey = ''): JsonObject | undefined {
  return state.get(stateKeyOf(type, stateKey))?.content;
}

function safeInt(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) ? value : undefined;
}

/**
 * The room's creator: `content.creator` of the create event in v10, its `sender` in v11
 * (v11.md "Remove the `creator` property"). Undefined when the state has no create event.
 */
export function creatorOf(state: RoomState, version: RoomVersionId): string | undefined {
  const create = state.get(stateKeyOf(CREATE, ''));
  if (!create) return undefined;
  if (version === '10') {
    const creator = create.content['creator'];
    return typeof creator === 'string' ? creator : undefined;
  }
  return create.sender;
}

/** A user's current membership: the `membership` of their member event, `leave` when there is none. */
export function membershipOf(userId: string, state: RoomState): string {
  const membership = stateContent(state, MEMBER, userId)?.['membership'];
  return typeof membership === 'string' ? membership : 'leave';
}

/** The `join_rule` of the room's m.room.join_rules event; undefined without one. */
export function joinRuleOf(state: RoomState): string | undefined {
  const rule = stateContent(state, JOIN_RULES)?.['join_rule'];
  return typeof rule === 'string' ? rule : undefined;
}

/**
 * A user's power level: their `users` entry, else `users_default` (0). Without a power levels
 * event the creator has 100 and everyone else 0.
 */
export function powerLevelOf(userId: string, state: RoomState, version: RoomVersionId): number {
  const levels = stateContent(state, POWER_LEVELS);
  if (!levels) return userId === creatorOf(state, version) ? CREATOR_DEFAULT : USERS_DEFAULT;
  const users = levels['users'];
  const own = isObject(users) ? safeInt(users[userId]) : undefined;
  return own ?? safeInt(levels['users_default']) ?? USERS_DEFAULT;
}

/**
 * The level needed to send an event of `type`: `events[type]`, else `state_default` (50) for state
 * events and `events_default` (0) for others; the same defaults apply with no power levels event.
 * Membership events are governed by the action levels instead (`actionPowerLevel`).
 */
export function requiredPowerLevel(type: string, isState: boolean, state: RoomState): number {
  const levels = stateContent(state, POWER_LEVELS) ?? {};
  const events = levels['events'];
  const specific = isObject(events) ? safeInt(events[type]) : undefined;
  if (specific !== undefined) return specific;
  return isState ? (safeInt(levels['state_default']) ?? STATE_DEFAULT) : (safeInt(levels['events_default']) ?? EVENTS_DEFAULT);
}

/** The invite, kick, ban or redact level (defaults 0, 50, 50, 50). */
export function actionPowerLevel(action: PowerLevelAction, state: RoomState): number {
  return safeInt(stateContent(state, POWER_LEVELS)?.[action]) ?? ACTION_DEFAULTS[action];
}

/** The level a sender needs for a notification key such as `room` (@room); 50 when unset. */
export function notificationPowerLevel(key: string, state: RoomState): number {
  const notifications = stateContent(state, POWER_LEVELS)?.['notifications'];
  return (isObject(notifications) ? safeInt(notifications[key]) : undefined) ?? NOTIFICATION_DEFAULT;
}

/**
 * Whether a redaction by `redactionSender` is applied to an event sent by `originalSender`, as the
 * client-server API decides it: one's own events, or anyone's with the redact level. (The auth rules
 * let any redaction through that meets the m.room.redaction send level; v3-handling-redactions.md
 * also applies one from the original sender's server, a federation case that is a superset of
 * "one's own" for local users and is not used for the client-server API.)
 */
export function canRedact(redactionSender: string, originalSender: string, state: RoomState, version: RoomVersionId): boolean {
  if (redactionSender === originalSender) return true;
  return powerLevelOf(redactionSender, state, version) >= actionPowerLevel('redact', state);
}

// ---------------------------------------------------------------------------------------------
// Identifiers

/** The server name of a user or room ID: everything after the first colon. */
function domainOf(id: string): string {
  const at = id.indexOf(':');
  return at < 0 ? '' : id.slice(at + 1);
}

const SERVER_NAME = /^(?:[A-Za-z0-9.-]{1,255}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$/;

/**
 * A user ID the auth rules accept: `@`, a localpart with neither `:` nor NUL (historical user IDs
 * included, appendices.md "Historical User IDs"), `:`, a server name; at most 255 bytes.
 */
export function isValidUserId(value: string): boolean {
  if (!value.startsWith('@') || Buffer.byteLength(value) > 255) return false;
  const colon = value.indexOf(':');
  if (colon < 0 || value.slice(0, colon).includes('\u0000')) return false;
  return SERVER_NAME.test(value.slice(colon + 1));
}

// ---------------------------------------------------------------------------------------------
// The rules

/**
 * Throws an AuthError if `event` is not allowed by the room version's authorisation rules, given
 * `state`, the room state before it (empty for the create event).
 */
export function authorize(event: AuthEvent, state: RoomState, version: RoomVersionId): void {
  if (event.type === CREATE) return authorizeCreate(event, version);

  // Rule 2.4, on the state the auth events are selected from.
  const create = state.get(stateKeyOf(CREATE, ''));
  if (!create) throw new AuthError('2.4', 'The room has no m.room.create event');

  // Rule 3.
  if (create.content['m.federate'] === false && domainOf(event.sender) !== domainOf(create.sender)) {
    throw new AuthError('3', `The room is not federated: ${event.sender} is not on the creator's server ${domainOf(create.sender)}`);
  }

  if (event.type === MEMBER) return authorizeMember(event, state, version, create);

  // Rule 5.
  const senderMembership = membershipOf(event.sender, state);
  if (senderMembership !== 'join') {
    throw new AuthError('5', `${event.sender} is not joined to the room (membership: ${senderMembership})`);
  }

  const senderLevel = powerLevelOf(event.sender, state, version);

  // Rule 6.
  if (event.type === THIRD_PARTY_INVITE) {
    const inviteLevel = actionPowerLevel('invite', state);
    if (senderLevel >= inviteLevel) return;
    throw new AuthError('6', `Sending ${THIRD_PARTY_INVITE} needs the invite level ${inviteLevel}; ${event.sender} has ${senderLevel}`);
  }

  // Rule 7.
  const isState = event.state_key !== undefined;
  const required = requiredPowerLevel(event.type, isState, state);
  if (required > senderLevel) {
    throw new AuthError(
      '7',
      `Sending ${isState ? 'state event' : 'event'} ${event.type} needs power level ${required}; ${event.sender} has ${senderLevel}`,
    );
  }

  // Rule 8.
  if (event.state_key?.startsWith('@') && event.state_key !== event.sender) {
    throw new AuthError('8', `The state key ${event.state_key} is a user ID other than the sender's (${event.sender})`);
  }

  // Rule 9.
  if (event.type === POWER_LEVELS) authorizePowerLevels(event, state, senderLevel);
  // Rule 10: allow.
}

/** Rule 1. */
function authorizeCreate(event: AuthEvent, version: RoomVersionId): void {
  if (event.prev_events.length > 0) throw new AuthError('1.1', 'The m.room.create event must have no prev_events');
  const roomDomain = domainOf(event.room_id);
  if (roomDomain !== domainOf(event.sender)) {
    throw new AuthError('1.2', `The room ID's server (${roomDomain}) is not the sender's (${domainOf(event.sender)})`);
  }
  const roomVersion = event.content['room_version'];
  // Absent means version 1, which is not a recognised version here.
  if (roomVersion === undefined) throw new AuthError('1.3', 'The m.room.create event has no room_version: room version 1 is not supported');
  if (roomVersion !== '10' && roomVersion !== '11') {
    throw new AuthError('1.3', `Room version ${JSON.stringify(roomVersion)} is not supported`);
  }
  if (roomVersion !== version) {
    throw new AuthError('1.3', `The m.room.create event says room version ${roomVersion} but is checked under version ${version}'s rules`);
  }
  if (version === '10' && event.content['creator'] === undefined) {
    throw new AuthError('1.4', 'A room version 10 m.room.create event must have a creator in its content');
  }
}

/** Rule 4. */
function authorizeMember(event: AuthEvent, state: RoomState, version: RoomVersionId, create: StoredEvent): void {
  const target = event.state_key;
  const membership = event.content['membership'];
  // Rule 4.1.
  if (target === undefined) throw new AuthError('4.1', 'An m.room.member event must have a state_key');
  if (membership === undefined) throw new AuthError('4.1', 'An m.room.member event must have a membership in its content');

  const { sender } = event;
  const senderMembership = membershipOf(sender, state);
  const targetMembership = membershipOf(target, state);
  const level = (user: string) => powerLevelOf(user, state, version);

  switch (membership) {
    case 'join': {
      // Rule 4.3.1: the creator's join right after the create event.
      if (event.prev_events.length === 1 && event.prev_events[0] === create.event_id && target === creatorOf(state, version)) return;
      // Rule 4.3.2.
      if (sender !== target) throw new AuthError('4.3.2', `${sender} cannot join the room on behalf of ${target}`);
      // Rule 4.3.3.
      if (senderMembership === 'ban') throw new AuthError('4.3.3', `${sender} is banned from the room`);
      const joinRule = joinRuleOf(state);
      // Rule 4.3.4.
      if (joinRule === 'invite' || joinRule === 'knock') {
        if (senderMembership === 'invite' || senderMembership === 'join') return;
        throw new AuthError('4.3.4', `The room's join rule is ${joinRule}: ${sender} must be invited to join`);
      }
      // Rule 4.3.5.
      if (joinRule === 'restricted' || joinRule === 'knock_restricted') {
        if (senderMembership === 'join' || senderMembership === 'invite') return;
        const authoriser = event.content['join_authorised_via_users_server'];
        if (typeof authoriser !== 'string') {
          throw new AuthError('4.3.5.2', `The room's join rule is ${joinRule}: ${sender} needs an invite or an authorising user`);
        }
        if (membershipOf(authoriser, state) !== 'join') {
          throw new AuthError('4.3.5.2', `The authorising user ${authoriser} is not joined to the room`);
        }
        const inviteLevel = actionPowerLevel('invite', state);
        if (level(authoriser) < inviteLevel) {
          throw new AuthError('4.3.5.2', `The authorising user ${authoriser} does not have the invite level ${inviteLevel}`);
        }
        return;
      }
      // Rule 4.3.6.
      if (joinRule === 'public') return;
      // Rule 4.3.7.
      throw new AuthError('4.3.7', joinRule === undefined ? 'The room has no join rule: nobody may join' : `Nobody may join a room whose join rule is ${joinRule}`);
    }

    case 'invite': {
      // Rule 4.4.1.
      if (event.content['third_party_invite'] !== undefined) return authorizeThirdPartyInvite(event, target, targetMembership, state);
      // Rule 4.4.2.
      if (senderMembership !== 'join') throw new AuthError('4.4.2', `${sender} is not joined to the room (membership: ${senderMembership})`);
      // Rule 4.4.3.
      if (targetMembership === 'join') throw new AuthError('4.4.3', `${target} is already joined to the room`);
      if (targetMembership === 'ban') throw new AuthError('4.4.3', `${target} is banned from the room`);
      // Rule 4.4.4 and 4.4.5.
      const inviteLevel = actionPowerLevel('invite', state);
      if (level(sender) >= inviteLevel) return;
      throw new AuthError('4.4.5', `Inviting needs power level ${inviteLevel}; ${sender} has ${level(sender)}`);
    }

    case 'leave': {
      // Rule 4.5.1.
      if (sender === target) {
        if (senderMembership === 'invite' || senderMembership === 'join' || senderMembership === 'knock') return;
        throw new AuthError('4.5.1', `${sender} cannot leave: their membership is ${senderMembership}`);
      }
      // Rule 4.5.2.
      if (senderMembership !== 'join') throw new AuthError('4.5.2', `${sender} is not joined to the room (membership: ${senderMembership})`);
      // Rule 4.5.3.
      const banLevel = actionPowerLevel('ban', state);
      if (targetMembership === 'ban' && level(sender) < banLevel) {
        throw new AuthError('4.5.3', `Unbanning needs power level ${banLevel}; ${sender} has ${level(sender)}`);
      }
      // Rule 4.5.4 and 4.5.5.
      const kickLevel = actionPowerLevel('kick', state);
      if (level(sender) < kickLevel) {
        throw new AuthError('4.5.5', `${targetMembership === 'ban' ? 'Unbanning' : 'Kicking'} needs power level ${kickLevel}; ${sender} has ${level(sender)}`);
      }
      if (level(target) >= level(sender)) {
        throw new AuthError('4.5.5', `${sender} (power level ${level(sender)}) cannot remove ${target}, whose power level ${level(target)} is not below theirs`);
      }
      return;
    }

    case 'ban': {
      // Rule 4.6.1.
      if (senderMembership !== 'join') throw new AuthError('4.6.1', `${sender} is not joined to the room (membership: ${senderMembership})`);
      // Rule 4.6.2 and 4.6.3.
      const banLevel = actionPowerLevel('ban', state);
      if (level(sender) < banLevel) throw new AuthError('4.6.3', `Banning needs power level ${banLevel}; ${sender} has ${level(sender)}`);
      if (level(target) >= level(sender)) {
        throw new AuthError('4.6.3', `${sender} (power level ${level(sender)}) cannot ban ${target}, whose power level ${level(target)} is not below theirs`);
      }
      return;
    }

    case 'knock': {
      // Rule 4.7.1.
      const joinRule = joinRuleOf(state);
      if (joinRule !== 'knock' && joinRule !== 'knock_restricted') {
        throw new AuthError('4.7.1', `The room's join rule is ${joinRule ?? 'unset'}: knocking is not allowed`);
      }
      // Rule 4.7.2.
      if (sender !== target) throw new AuthError('4.7.2', `${sender} cannot knock on behalf of ${target}`);
      // Rule 4.7.3 and 4.7.4.
      if (senderMembership === 'ban' || senderMembership === 'invite' || senderMembership === 'join') {
        throw new AuthError('4.7.4', `${sender} cannot knock: their membership is ${senderMembership}`);
      }
      if (KNOCKING_SUPPORTED) return;
      throw new AuthError('4.7.3', 'Knocking is not supported on this server', true);
    }

    default:
      // Rule 4.8.
      throw new AuthError('4.8', `Unknown membership ${JSON.stringify(membership)}`);
  }
}

/** Rule 4.4.1: a member invite that carries a third-party invite's signed proof. */
function authorizeThirdPartyInvite(event: AuthEvent, target: string, targetMembership: string, state: RoomState): void {
  if (targetMembership === 'ban') throw new AuthError('4.4.1.1', `${target} is banned from the room`);
  const invite = event.content['third_party_invite'];
  const signed = isObject(invite) ? invite['signed'] : undefined;
  if (!isObject(signed)) throw new AuthError('4.4.1.2', 'third_party_invite has no signed object');
  const { mxid, token } = signed;
  if (typeof mxid !== 'string' || typeof token !== 'string') throw new AuthError('4.4.1.3', 'third_party_invite.signed needs mxid and token');
  if (mxid !== target) throw new AuthError('4.4.1.4', `third_party_invite.signed.mxid ${mxid} is not the invitee ${target}`);
  const thirdPartyInvite = state.get(stateKeyOf(THIRD_PARTY_INVITE, token));
  if (!thirdPartyInvite) throw new AuthError('4.4.1.5', 'The room has no m.room.third_party_invite event for this token');
  if (thirdPartyInvite.sender !== event.sender) {
    throw new AuthError('4.4.1.6', `The third-party invite was sent by ${thirdPartyInvite.sender}, not ${event.sender}`);
  }
  if (thirdPartyInviteSigner(signed, thirdPartyInvite.content) === undefined) {
    throw new AuthError('4.4.1.8', 'No signature of third_party_invite.signed matches a public key of the m.room.third_party_invite event');
  }
}

/** A public key an m.room.third_party_invite event names, and where its validity can be checked. */
export interface ThirdPartyInviteKey {
  publicKey: string;
  keyValidityUrl: string | undefined;
}

/** The public keys of an m.room.third_party_invite event's content: `public_key`, then each of `public_keys`. */
export function thirdPartyInviteKeys(content: JsonObject): ThirdPartyInviteKey[] {
  const keys: ThirdPartyInviteKey[] = [];
  const add = (publicKey: unknown, url: unknown) => {
    if (typeof publicKey === 'string') keys.push({ publicKey, keyValidityUrl: typeof url === 'string' ? url : undefined });
  };
  add(content['public_key'], content['key_validity_url']);
  const list = content['public_keys'];
  if (Array.isArray(list)) for (const entry of list) if (isObject(entry)) add(entry['public_key'], entry['key_validity_url']);
  return keys;
}

/**
 * Rule 4.4.1.7: the first public key of the m.room.third_party_invite event (`inviteContent`) that
 * one of the signatures of `signed` verifies with, whoever the signer and whatever the key ID;
 * undefined when none does. Keys may be in standard or URL-safe unpadded base64.
 */
export function thirdPartyInviteSigner(signed: JsonObject, inviteContent: JsonObject): ThirdPartyInviteKey | undefined {
  const signatures = signed['signatures'];
  if (!isObject(signatures)) return undefined;
  const candidates: string[] = [];
  for (const bySigner of Object.values(signatures)) {
    if (!isObject(bySigner)) continue;
    for (const signature of Object.values(bySigner)) if (typeof signature === 'string') candidates.push(signature);
  }
  for (const key of thirdPartyInviteKeys(inviteContent)) {
    const standard = key.publicKey.replace(/-/g, '+').replace(/_/g, '/');
    if (candidates.some((signature) => verifyEd25519Signature(signed, signature, standard))) return key;
  }
  return undefined;
}

/** Rule 9 (from rule 9.1: the sender is joined and has the level to send power levels). */
function authorizePowerLevels(event: AuthEvent, state: RoomState, senderLevel: number): void {
  const content = event.content;
  // Rule 9.1.
  for (const key of LEVEL_KEYS) {
    if (content[key] !== undefined && safeInt(content[key]) === undefined) {
      throw new AuthError('9.1', `Power levels: ${key} must be an integer, not ${JSON.stringify(content[key])}`);
    }
  }
  // Rule 9.2.
  for (const key of ['events', 'notifications'] as const) {
    const map = content[key];
    if (map === undefined) continue;
    if (!isObject(map)) throw new AuthError('9.2', `Power levels: ${key} must be an object`);
    for (const [name, value] of Object.entries(map)) {
      if (safeInt(value) === undefined) throw new AuthError('9.2', `Power levels: ${key}.${name} must be an integer, not ${JSON.stringify(value)}`);
    }
  }
  // Rule 9.3. A missing `users` is an empty one.
  const users = content['users'];
  if (users !== undefined) {
    if (!isObject(users)) throw new AuthError('9.3', 'Power levels: users must be an object');
    for (const [userId, value] of Object.entries(users)) {
      if (!isValidUserId(userId)) throw new AuthError('9.3', `Power levels: users key ${JSON.stringify(userId)} is not a valid user ID`);
      if (safeInt(value) === undefined) throw new AuthError('9.3', `Power levels: users.${userId} must be an integer, not ${JSON.stringify(value)}`);
    }
  }

  // Rule 9.4.
  const previous = stateContent(state, POWER_LEVELS);
  if (!previous) return;

  // Rule 9.5. Values are compared as they stand: an absent one is not compared with the sender's level.
  for (const key of LEVEL_KEYS) {
    const before = safeInt(previous[key]);
    const after = safeInt(content[key]);
    if (before === after) continue;
    if (before !== undefined && before > senderLevel) {
      throw new AuthError('9.5.1', `Power levels: ${key} is ${before}, above the sender's level ${senderLevel}, so the sender cannot change it`);
    }
    if (after !== undefined && after > senderLevel) {
      throw new AuthError('9.5.2', `Power levels: ${key} cannot be set to ${after}, above the sender's level ${senderLevel}`);
    }
  }

  // Rules 9.6 and 9.7.
  for (const key of ['events', 'notifications'] as const) {
    const before = levelMap(previous[key]);
    const after = levelMap(content[key]);
    for (const name of new Set([...before.keys(), ...after.keys()])) {
      const old = before.get(name);
      const now = after.get(name);
      if (old === now) continue;
      if (old !== undefined && old > senderLevel) {
        throw new AuthError('9.6.1', `Power levels: ${key}.${name} is ${old}, above the sender's level ${senderLevel}, so the sender cannot change it`);
      }
      if (now !== undefined && now > senderLevel) {
        throw new AuthError('9.7.1', `Power levels: ${key}.${name} cannot be set to ${now}, above the sender's level ${senderLevel}`);
      }
    }
  }

  // Rules 9.8 and 9.9.
  const before = levelMap(previous['users']);
  const after = levelMap(users);
  for (const userId of new Set([...before.keys(), ...after.keys()])) {
    const old = before.get(userId);
    const now = after.get(userId);
    if (old === now) continue;
    if (old !== undefined && userId !== event.sender && old >= senderLevel) {
      throw new AuthError('9.8.1', `Power levels: ${userId} has level ${old}, not below the sender's ${senderLevel}, so the sender cannot change it`);
    }
    if (now !== undefined && now > senderLevel) {
      throw new AuthError('9.9.1', `Power levels: ${userId} cannot be given level ${now}, above the sender's ${senderLevel}`);
    }
  }
  // Rule 9.10: allow.
}

/** The integer entries of an `events`, `notifications` or `users` object (absent or malformed: none). */
function levelMap(value: unknown): Map<string, number> {
  const map = new Map<string, number>();
  if (!isObject(value)) return map;
  for (const [key, level] of Object.entries(value)) {
    const int = safeInt(level);
    if (int !== undefined) map.set(key, int);
  }
  return map;
}
