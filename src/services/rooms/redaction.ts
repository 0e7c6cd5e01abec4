import { isObject, type JsonObject } from '../../validate.js';
import type { Pdu, StoredEvent } from './pdu.js';

/**
 * The redaction algorithm (spec content/rooms/fragments/v1-, v6-, v9- and v11-redactions.md, and
 * v8.md's own list): which top-level keys survive, and which content keys each event type keeps.
 * Redaction decides what an event's signature and reference hash (hence its ID) cover, so these
 * lists must be exactly the spec's for each room version.
 */
interface RedactionRules {
  topLevel: readonly string[];
  /** Per event type, the content keys kept ('all' keeps the whole content). Other types keep none. */
  content: Readonly<Record<string, readonly string[] | 'all'>>;
  /** v11: m.room.member keeps `third_party_invite`, holding only its `signed` key. */
  keepThirdPartyInviteSigned: boolean;
}

const TOP_LEVEL_V1 = [
  'event_id', 'type', 'room_id', 'sender', 'state_key', 'content', 'hashes', 'signatures', 'depth',
  'prev_events', 'prev_state', 'auth_events', 'origin', 'origin_server_ts', 'membership',
] as const;

// v11 drops origin, membership and prev_state.
const TOP_LEVEL_V11 = [
  'event_id', 'type', 'room_id', 'sender', 'state_key', 'content', 'hashes', 'signatures', 'depth',
  'prev_events', 'auth_events', 'origin_server_ts',
] as const;

const POWER_LEVELS_V1 = ['ban', 'events', 'events_default', 'kick', 'redact', 'state_default', 'users', 'users_default'] as const;

const V1: RedactionRules = {
  topLevel: TOP_LEVEL_V1,
  content: {
    'm.room.member': ['membership'],
    'm.room.create': ['creator'],
    'm.room.join_rules': ['join_rule'],
    'm.room.power_levels': POWER_LEVELS_V1,
    'm.room.aliases': ['aliases'],
    'm.room.history_visibility': ['history_visibility'],
  },
  keepThirdPartyInviteSigned: false,
};

// v6: m.room.aliases no longer keeps `aliases`.
const V6: RedactionRules = {
  ...V1,
  content: {
    'm.room.member': ['membership'],
    'm.room.create': ['creator'],
    'm.room.join_rules': ['join_rule'],
    'm.room.power_levels': POWER_LEVELS_V1,
    'm.room.history_visibility': ['history_visibility'],
  },
};

// v8: join rules keep `allow`.
const V8: RedactionRules = { ...V6, content: { ...V6.content, 'm.room.join_rules': ['join_rule', 'allow'] } };

// v9 (and v10): member events keep `join_authorised_via_users_server`.
const V9: RedactionRules = { ...V8, content: { ...V8.content, 'm.room.member': ['membership', 'join_authorised_via_users_server'] } };

const V11: RedactionRules = {
  topLevel: TOP_LEVEL_V11,
  content: {
    'm.room.member': ['membership', 'join_authorised_via_users_server'],
    'm.room.create': 'all',
    'm.room.join_rules': ['join_rule', 'allow'],
    'm.room.power_levels': ['ban', 'events', 'events_default', 'invite', 'kick', 'redact', 'state_default', 'users', 'users_default'],
    'm.room.history_visibility': ['history_visibility'],
    'm.room.redaction': ['redacts'],
  },
  keepThirdPartyInviteSigned: true,
};

const RULES: Readonly<Record<string, RedactionRules>> = {
  '1': V1, '2': V1, '3': V1, '4': V1, '5': V1,
  '6': V6, '7': V6,
  '8': V8,
  '9': V9, '10': V9,
  '11': V11, '12': V11,
};

/** True for the room versions whose redaction rules are known here (1 to 12). */
export function knowsRedactionRules(version: string): boolean {
  return Object.hasOwn(RULES, version);
}

/**
 * The redacted form of an event under `version`'s rules, as a new object (deep-copied: nothing is
 * shared with `event`). `unsigned` is dropped like every key not on the list; a caller that serves
 * the redacted event re-adds what belongs there (e.g. `redacted_because`). Throws for a room
 * version whose rules are unknown.
 */
export function redactEvent(event: StoredEvent, version: string): StoredEvent;
export function redactEvent(event: Pdu, version: string): Pdu;
export function redactEvent(event: JsonObject, version: string): JsonObject;
export function redactEvent(event: JsonObject | Pdu, version: string): JsonObject | Pdu {
  const rules = knowsRedactionRules(version) ? RULES[version]! : undefined;
  if (!rules) throw new Error(`no redaction rules for room version ${JSON.stringify(version)}`);
  const source = event as JsonObject;
  const out: JsonObject = {};
  for (const key of rules.topLevel) {
    if (key !== 'content' && Object.hasOwn(source, key) && source[key] !== undefined) out[key] = source[key];
  }
  out.content = redactContent(typeof source.type === 'string' ? source.type : '', isObject(source.content) ? source.content : {}, rules);
  return structuredClone(out);
}

function redactContent(type: string, content: JsonObject, rules: RedactionRules): JsonObject {
  const kept = Object.hasOwn(rules.content, type) ? rules.content[type]! : [];
  if (kept === 'all') return content;
  const out: JsonObject = {};
  for (const key of kept) {
    if (Object.hasOwn(content, key) && content[key] !== undefined) out[key] = content[key];
  }
  if (rules.keepThirdPartyInviteSigned && type === 'm.room.member') {
    const invite = content.third_party_invite;
    if (isObject(invite) && Object.hasOwn(invite, 'signed') && invite.signed !== undefined) out.third_party_invite = { signed: invite.signed };
  }
  return out;
}
