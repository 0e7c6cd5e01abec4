import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  actionPowerLevel,
  authEventIds,
  authEventsSelection,
  AuthError,
  authorize,
  canRedact,
  creatorOf,
  isValidUserId,
  joinRuleOf,
  membershipOf,
  notificationPowerLevel,
  powerLevelOf,
  requiredPowerLevel,
  thirdPartyInviteSigner,
  type AuthEvent,
} from '../src/services/rooms/auth-rules.js';
import { generateKeyPairSync } from 'node:crypto';
import { rawPublicKey, unpaddedBase64, urlSafeBase64 } from '../src/services/rooms/ed25519.js';
import { ed25519Signer, signJson } from '../src/services/rooms/event-hash.js';
import { stateKeyOf, type RoomState, type RoomVersionId, type StoredEvent } from '../src/services/rooms/pdu.js';
import { initialPowerLevels } from '../src/services/rooms/power-levels.js';
import type { JsonObject } from '../src/validate.js';

// Fixtures: fake event IDs; nothing here hashes.
const ROOM = '!room:example.org';
const ALICE = '@alice:example.org'; // creator, level 100
const BOB = '@bob:example.org';
const CAROL = '@carol:example.org';
const MOD = '@mod:example.org'; // level 50
const MOD2 = '@mod2:example.org'; // level 50
const EVE = '@eve:other.org';
const VERSIONS: RoomVersionId[] = ['10', '11'];

let counter = 0;
function stored(type: string, sender: string, content: JsonObject, stateKey?: string): StoredEvent {
  counter += 1;
  return {
    event_id: `$e${counter}`,
    type,
    room_id: ROOM,
    sender,
    content,
    ...(stateKey === undefined ? {} : { state_key: stateKey }),
    origin_server_ts: 0,
    depth: counter,
    prev_events: [],
    auth_events: [],
    hashes: { sha256: '' },
    signatures: {},
  };
}

function stateOf(...events: StoredEvent[]): Map<string, StoredEvent> {
  return new Map(events.map((e) => [stateKeyOf(e.type, e.state_key ?? ''), e]));
}

function createEvent(version: RoomVersionId, extra: JsonObject = {}, sender = ALICE): StoredEvent {
  return stored('m.room.create', sender, { room_version: version, ...(version === '10' ? { creator: sender } : {}), ...extra }, '');
}

const member = (user: string, membership: string, sender = user) => stored('m.room.member', sender, { membership }, user);

interface RoomOptions {
  joinRule?: string | null;
  /** Memberships besides Alice's join. */
  members?: Record<string, string>;
  /** Power levels content; null for none. Default: Alice 100, Mod and Mod2 50, defaults otherwise. */
  powerLevels?: JsonObject | null;
  createExtra?: JsonObject;
}

/** A room Alice created, with Alice joined and the given members, join rule and power levels. */
function room(version: RoomVersionId, options: RoomOptions = {}): Map<string, StoredEvent> {
  const state = stateOf(createEvent(version, options.createExtra), member(ALICE, 'join'));
  const levels = options.powerLevels === undefined ? { users: { [ALICE]: 100, [MOD]: 50, [MOD2]: 50 } } : options.powerLevels;
  const extra: StoredEvent[] = [];
  if (levels !== null) extra.push(stored('m.room.power_levels', ALICE, levels, ''));
  const joinRule = options.joinRule === undefined ? 'public' : options.joinRule;
  if (joinRule !== null) extra.push(stored('m.room.join_rules', ALICE, { join_rule: joinRule }, ''));
  for (const [user, membership] of Object.entries(options.members ?? {})) extra.push(member(user, membership, membership === 'ban' ? ALICE : user));
  for (const e of extra) state.set(stateKeyOf(e.type, e.state_key ?? ''), e);
  return state;
}

function event(type: string, sender: string, content: JsonObject, stateKey?: string, prevEvents: string[] = ['$prev']): AuthEvent {
  return { type, sender, content, room_id: ROOM, prev_events: prevEvents, ...(stateKey === undefined ? {} : { state_key: stateKey }) };
}

const membership = (sender: string, target: string, value: string, extra: JsonObject = {}) =>
  event('m.room.member', sender, { membership: value, ...extra }, target);

function allowed(e: AuthEvent, state: RoomState, version: RoomVersionId): void {
  assert.doesNotThrow(() => authorize(e, state, version));
}

function refused(e: AuthEvent, state: RoomState, version: RoomVersionId, rule: string, unsupported = false): AuthError {
  let caught: unknown;
  try {
    authorize(e, state, version);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof AuthError, `expected an AuthError (rule ${rule}), got ${String(caught)}`);
  assert.equal(caught.rule, rule, caught.message);
  assert.equal(caught.unsupported, unsupported, caught.message);
  assert.match(caught.message, new RegExp(`auth rule ${rule.replaceAll('.', '\\.')}\\)$`));
  return caught;
}

describe('m.room.create (rule 1)', () => {
  const create = (content: JsonObject, sender = ALICE, roomId = ROOM, prev: string[] = []): AuthEvent => ({
    type: 'm.room.create',
    sender,
    content,
    state_key: '',
    room_id: roomId,
    prev_events: prev,
  });

  it('allows a v11 create event without creator and a v10 one with creator, on empty state', () => {
    allowed(create({ room_version: '11' }), new Map(), '11');
    allowed(create({ room_version: '10', creator: ALICE }), new Map(), '10');
  });

  it('refuses prev_events (1.1), a room ID on another server (1.2)', () => {
    refused(create({ room_version: '11' }, ALICE, ROOM, ['$x']), new Map(), '11', '1.1');
    refused(create({ room_version: '11' }, ALICE, '!room:other.org'), new Map(), '11', '1.2');
    refused(create({ room_version: '11' }, EVE), new Map(), '11', '1.2');
  });

  it('refuses an absent (version 1), unknown or mismatched room_version (1.3)', () => {
    const noVersion = refused(create({}), new Map(), '11', '1.3');
    assert.match(noVersion.message, /room version 1 is not supported/);
    refused(create({ room_version: '9' }), new Map(), '11', '1.3');
    refused(create({ room_version: '12' }), new Map(), '11', '1.3');
    refused(create({ room_version: 11 }), new Map(), '11', '1.3');
    refused(create({ room_version: '10', creator: ALICE }), new Map(), '11', '1.3');
  });

  it('v10 refuses a create event without creator (1.4); v11 does not need one', () => {
    refused(create({ room_version: '10' }), new Map(), '10', '1.4');
    allowed(create({ room_version: '11' }), new Map(), '11');
  });
});

describe('room-wide rules (2.4, 3)', () => {
  for (const version of VERSIONS) {
    it(`v${version}: refuses any other event when the state has no create event`, () => {
      refused(event('m.room.message', ALICE, { body: 'hi' }), stateOf(member(ALICE, 'join')), version, '2.4');
    });

    it(`v${version}: m.federate false refuses senders from other servers, not local ones`, () => {
      const state = room(version, { createExtra: { 'm.federate': false } });
      refused(membership(EVE, EVE, 'join'), state, version, '3');
      allowed(membership(BOB, BOB, 'join'), state, version);
      allowed(membership(EVE, EVE, 'join'), room(version, { createExtra: { 'm.federate': true } }), version);
      allowed(membership(EVE, EVE, 'join'), room(version), version);
    });
  }
});

describe('m.room.member join (rule 4.3)', () => {
  for (const version of VERSIONS) {
    it(`v${version}: the creator's first join, right after the create event`, () => {
      const create = createEvent(version);
      const state = stateOf(create);
      allowed({ ...membership(ALICE, ALICE, 'join'), prev_events: [create.event_id] }, state, version);
      // Not right after the create event, or not the creator: the join rules decide (there are none).
      refused({ ...membership(ALICE, ALICE, 'join'), prev_events: ['$other'] }, state, version, '4.3.7');
      refused({ ...membership(BOB, BOB, 'join'), prev_events: [create.event_id] }, state, version, '4.3.7');
    });

    it(`v${version}: joins a public room; refuses joining for someone else`, () => {
      allowed(membership(BOB, BOB, 'join'), room(version), version);
      refused(membership(BOB, CAROL, 'join'), room(version), version, '4.3.2');
    });

    it(`v${version}: a banned user cannot join, even a public room`, () => {
      refused(membership(BOB, BOB, 'join'), room(version, { members: { [BOB]: 'ban' } }), version, '4.3.3');
    });

    it(`v${version}: invite and knock rooms need an invite (or a join, for profile changes)`, () => {
      for (const joinRule of ['invite', 'knock']) {
        refused(membership(BOB, BOB, 'join'), room(version, { joinRule }), version, '4.3.4');
        refused(membership(BOB, BOB, 'join'), room(version, { joinRule, members: { [BOB]: 'leave' } }), version, '4.3.4');
        allowed(membership(BOB, BOB, 'join'), room(version, { joinRule, members: { [BOB]: 'invite' } }), version);
        allowed(membership(BOB, BOB, 'join'), room(version, { joinRule, members: { [BOB]: 'join' } }), version);
      }
    });

    it(`v${version}: restricted and knock_restricted rooms: invited, joined, or a joined authoriser with invite power`, () => {
      const levels = { users: { [ALICE]: 100, [MOD]: 50 }, invite: 50 };
      for (const joinRule of ['restricted', 'knock_restricted']) {
        const base = { joinRule, powerLevels: levels };
        refused(membership(BOB, BOB, 'join'), room(version, base), version, '4.3.5.2');
        allowed(membership(BOB, BOB, 'join'), room(version, { ...base, members: { [BOB]: 'invite' } }), version);
        allowed(membership(BOB, BOB, 'join'), room(version, { ...base, members: { [BOB]: 'join' } }), version);
        const via = (user: string) => membership(BOB, BOB, 'join', { join_authorised_via_users_server: user });
        allowed(via(ALICE), room(version, base), version);
        allowed(via(MOD), room(version, { ...base, members: { [MOD]: 'join' } }), version);
        refused(via(MOD), room(version, base), version, '4.3.5.2'); // not joined
        refused(via(CAROL), room(version, { ...base, members: { [CAROL]: 'join' } }), version, '4.3.5.2'); // level 0 < 50
        refused(via(ALICE), room(version, { ...base, members: { [BOB]: 'ban' } }), version, '4.3.3');
      }
    });

    it(`v${version}: private rooms and rooms without join rules refuse joins`, () => {
      refused(membership(BOB, BOB, 'join'), room(version, { joinRule: 'private' }), version, '4.3.7');
      refused(membership(BOB, BOB, 'join'), room(version, { joinRule: null, members: { [BOB]: 'invite' } }), version, '4.3.7');
    });
  }

  it('v10 vs v11: the creator is content.creator in v10 and the sender in v11', () => {
    // Alice sends a v10 create event naming Bob as creator: Bob's first join is the creator's.
    const v10 = stored('m.room.create', ALICE, { room_version: '10', creator: BOB }, '');
    allowed({ ...membership(BOB, BOB, 'join'), prev_events: [v10.event_id] }, stateOf(v10), '10');
    refused({ ...membership(ALICE, ALICE, 'join'), prev_events: [v10.event_id] }, stateOf(v10), '10', '4.3.7');
    assert.equal(creatorOf(stateOf(v10), '10'), BOB);
    // The same create event read under v11's rules: the sender is the creator.
    const v11 = stored('m.room.create', ALICE, { room_version: '11', creator: BOB }, '');
    allowed({ ...membership(ALICE, ALICE, 'join'), prev_events: [v11.event_id] }, stateOf(v11), '11');
    refused({ ...membership(BOB, BOB, 'join'), prev_events: [v11.event_id] }, stateOf(v11), '11', '4.3.7');
    assert.equal(creatorOf(stateOf(v11), '11'), ALICE);
    // Without a power levels event, the creator has 100.
    assert.equal(powerLevelOf(BOB, stateOf(v10), '10'), 100);
    assert.equal(powerLevelOf(ALICE, stateOf(v10), '10'), 0);
    assert.equal(powerLevelOf(ALICE, stateOf(v11), '11'), 100);
    assert.equal(powerLevelOf(BOB, stateOf(v11), '11'), 0);
  });
});

describe('m.room.member invite (rule 4.4)', () => {
  for (const version of VERSIONS) {
    it(`v${version}: a joined member with the invite level invites`, () => {
      allowed(membership(ALICE, BOB, 'invite'), room(version, { joinRule: 'invite' }), version);
      // invite defaults to 0: any joined member may invite.
      allowed(membership(BOB, CAROL, 'invite'), room(version, { members: { [BOB]: 'join' } }), version);
      // A target who left, or is invited already, can be invited.
      allowed(membership(ALICE, BOB, 'invite'), room(version, { members: { [BOB]: 'leave' } }), version);
      allowed(membership(ALICE, BOB, 'invite'), room(version, { members: { [BOB]: 'invite' } }), version);
    });

    it(`v${version}: inviting needs the invite level`, () => {
      const powerLevels = { users: { [ALICE]: 100, [MOD]: 50 }, invite: 50 };
      refused(membership(BOB, CAROL, 'invite'), room(version, { powerLevels, members: { [BOB]: 'join' } }), version, '4.4.5');
      allowed(membership(MOD, CAROL, 'invite'), room(version, { powerLevels, members: { [MOD]: 'join' } }), version);
    });

    it(`v${version}: the sender must be joined`, () => {
      refused(membership(BOB, CAROL, 'invite'), room(version, { members: { [BOB]: 'invite' } }), version, '4.4.2');
      refused(membership(BOB, CAROL, 'invite'), room(version), version, '4.4.2');
    });

    it(`v${version}: a joined or banned target cannot be invited`, () => {
      refused(membership(ALICE, BOB, 'invite'), room(version, { members: { [BOB]: 'join' } }), version, '4.4.3');
      const banned = refused(membership(ALICE, BOB, 'invite'), room(version, { members: { [BOB]: 'ban' } }), version, '4.4.3');
      assert.match(banned.message, /banned/);
    });

    it(`v${version}: third-party invites are checked in order, the signature against the invite's public keys last`, () => {
      const token = 'tok';
      const longTerm = generateKeyPairSync('ed25519');
      const ephemeral = generateKeyPairSync('ed25519');
      const other = generateKeyPairSync('ed25519');
      const tpiContent = {
        display_name: 'b...',
        public_key: unpaddedBase64(rawPublicKey(longTerm.privateKey)),
        key_validity_url: 'https://id.example/_matrix/identity/v2/pubkey/isvalid',
        // The second key in URL-safe base64, which the spec allows too.
        public_keys: [{ public_key: urlSafeBase64(rawPublicKey(ephemeral.privateKey)), key_validity_url: 'https://id.example/_matrix/identity/v2/pubkey/ephemeral/isvalid' }],
      };
      const tpi = stored('m.room.third_party_invite', ALICE, tpiContent, token);
      const withTpi = (options: RoomOptions = {}) => {
        const state = room(version, options);
        state.set(stateKeyOf(tpi.type, token), tpi);
        return state;
      };
      const invite = (signed: unknown, sender = ALICE) => membership(sender, BOB, 'invite', { third_party_invite: { display_name: 'b...', signed } });
      const sign = (key: typeof longTerm, keyId = 'ed25519:0') => signJson({ mxid: BOB, token, sender: ALICE }, 'id.example', ed25519Signer(keyId, key.privateKey));
      const signed = sign(longTerm);
      refused(invite(signed), withTpi({ members: { [BOB]: 'ban' } }), version, '4.4.1.1');
      refused(invite(undefined), withTpi(), version, '4.4.1.2');
      refused(invite({ mxid: BOB }), withTpi(), version, '4.4.1.3');
      refused(invite({ ...signed, mxid: CAROL }), withTpi(), version, '4.4.1.4');
      refused(invite(signed), room(version), version, '4.4.1.5');
      refused(invite(signed, MOD), withTpi({ members: { [MOD]: 'join' } }), version, '4.4.1.6');
      // The sender need not be in the room any more (the inviter may have left since).
      allowed(invite(signed), withTpi({ members: { [ALICE]: 'leave' } }), version);
      allowed(invite(sign(ephemeral, 'ed25519:ephemeral')), withTpi(), version);
      assert.equal(thirdPartyInviteSigner(sign(ephemeral), tpiContent)?.keyValidityUrl, tpiContent.public_keys[0]!.key_validity_url);
      assert.equal(thirdPartyInviteSigner(signed, tpiContent)?.keyValidityUrl, tpiContent.key_validity_url);
      refused(invite(sign(other)), withTpi(), version, '4.4.1.8');
      // A signed field changed after signing, or no signatures at all.
      refused(invite({ ...signed, sender: CAROL }), withTpi(), version, '4.4.1.8');
      refused(invite({ mxid: BOB, token, signatures: {} }), withTpi(), version, '4.4.1.8');
    });
  }
});

describe('m.room.member leave, kick and unban (rule 4.5)', () => {
  for (const version of VERSIONS) {
    it(`v${version}: one leaves from invite, join or knock, not from leave or ban`, () => {
      for (const from of ['invite', 'join', 'knock']) allowed(membership(BOB, BOB, 'leave'), room(version, { members: { [BOB]: from } }), version);
      refused(membership(BOB, BOB, 'leave'), room(version), version, '4.5.1');
      refused(membership(BOB, BOB, 'leave'), room(version, { members: { [BOB]: 'leave' } }), version, '4.5.1');
      refused(membership(BOB, BOB, 'leave'), room(version, { members: { [BOB]: 'ban' } }), version, '4.5.1');
    });

    it(`v${version}: kicking needs the kick level and more power than the target`, () => {
      const members = { [BOB]: 'join', [CAROL]: 'join', [MOD]: 'join', [MOD2]: 'join' };
      allowed(membership(ALICE, BOB, 'leave'), room(version, { members }), version);
      allowed(membership(MOD, BOB, 'leave'), room(version, { members }), version);
      allowed(membership(ALICE, BOB, 'leave'), room(version, { members: { [BOB]: 'invite' } }), version); // revoking an invite
      refused(membership(BOB, CAROL, 'leave'), room(version, { members }), version, '4.5.5'); // 0 < kick 50
      refused(membership(MOD, MOD2, 'leave'), room(version, { members }), version, '4.5.5'); // a peer at 50
      refused(membership(MOD, ALICE, 'leave'), room(version, { members }), version, '4.5.5'); // above
      refused(membership(MOD, BOB, 'leave'), room(version, { members: { [BOB]: 'join' } }), version, '4.5.2'); // Mod not joined
    });

    it(`v${version}: unbanning needs the ban level, and the kick level and more power than the target`, () => {
      allowed(membership(ALICE, BOB, 'leave'), room(version, { members: { [BOB]: 'ban' } }), version);
      const banHigh = { users: { [ALICE]: 100, [MOD]: 50 }, ban: 60, kick: 50 };
      refused(membership(MOD, BOB, 'leave'), room(version, { powerLevels: banHigh, members: { [BOB]: 'ban', [MOD]: 'join' } }), version, '4.5.3');
      const kickHigh = { users: { [ALICE]: 100, [MOD]: 50 }, ban: 50, kick: 60 };
      refused(membership(MOD, BOB, 'leave'), room(version, { powerLevels: kickHigh, members: { [BOB]: 'ban', [MOD]: 'join' } }), version, '4.5.5');
      allowed(membership(MOD, BOB, 'leave'), room(version, { members: { [BOB]: 'ban', [MOD]: 'join' } }), version);
    });
  }
});

describe('m.room.member ban (rule 4.6)', () => {
  for (const version of VERSIONS) {
    it(`v${version}: banning needs to be joined, the ban level and more power than the target`, () => {
      const members = { [BOB]: 'join', [CAROL]: 'join', [MOD]: 'join', [MOD2]: 'join' };
      allowed(membership(ALICE, BOB, 'ban'), room(version, { members }), version);
      allowed(membership(MOD, BOB, 'ban'), room(version, { members }), version);
      allowed(membership(ALICE, EVE, 'ban'), room(version, { members }), version); // never in the room
      refused(membership(BOB, CAROL, 'ban'), room(version, { members }), version, '4.6.3');
      refused(membership(MOD, MOD2, 'ban'), room(version, { members }), version, '4.6.3');
      refused(membership(MOD, ALICE, 'ban'), room(version, { members }), version, '4.6.3');
      refused(membership(MOD, BOB, 'ban'), room(version, { members: { [MOD]: 'invite' } }), version, '4.6.1');
    });
  }
});

describe('m.room.member knock and malformed members (rules 4.7, 4.1, 4.8)', () => {
  for (const version of VERSIONS) {
    it(`v${version}: a knock the spec allows is refused as unsupported; others by the spec's rules`, () => {
      for (const joinRule of ['knock', 'knock_restricted']) {
        const error = refused(membership(BOB, BOB, 'knock'), room(version, { joinRule }), version, '4.7.3', true);
        assert.match(error.message, /Knocking is not supported on this server/);
        refused(membership(BOB, BOB, 'knock'), room(version, { joinRule, members: { [BOB]: 'invite' } }), version, '4.7.4');
        refused(membership(BOB, BOB, 'knock'), room(version, { joinRule, members: { [BOB]: 'join' } }), version, '4.7.4');
        refused(membership(BOB, BOB, 'knock'), room(version, { joinRule, members: { [BOB]: 'ban' } }), version, '4.7.4');
        refused(membership(ALICE, BOB, 'knock'), room(version, { joinRule }), version, '4.7.2');
      }
      for (const joinRule of ['public', 'invite', 'restricted']) refused(membership(BOB, BOB, 'knock'), room(version, { joinRule }), version, '4.7.1');
    });

    it(`v${version}: a member event needs a state_key and a membership, and a known membership`, () => {
      refused(event('m.room.member', ALICE, { membership: 'join' }), room(version), version, '4.1');
      refused(event('m.room.member', BOB, {}, BOB), room(version), version, '4.1');
      refused(membership(BOB, BOB, 'joined'), room(version), version, '4.8');
      refused(event('m.room.member', BOB, { membership: 1 }, BOB), room(version), version, '4.8');
    });
  }
});

describe('other events (rules 5 to 8)', () => {
  for (const version of VERSIONS) {
    it(`v${version}: only joined members send events`, () => {
      const message = (sender: string) => event('m.room.message', sender, { msgtype: 'm.text', body: 'hi' });
      allowed(message(BOB), room(version, { members: { [BOB]: 'join' } }), version);
      refused(message(BOB), room(version), version, '5');
      refused(message(BOB), room(version, { members: { [BOB]: 'invite' } }), version, '5');
      refused(message(BOB), room(version, { members: { [BOB]: 'leave' } }), version, '5');
      refused(event('m.room.topic', BOB, { topic: 't' }, ''), room(version, { members: { [BOB]: 'ban' } }), version, '5');
    });

    it(`v${version}: m.room.third_party_invite needs the invite level`, () => {
      const tpi = (sender: string) => event('m.room.third_party_invite', sender, { display_name: 'x', public_key: 'k' }, 'tok');
      const powerLevels = { users: { [ALICE]: 100 }, invite: 50, state_default: 0 };
      allowed(tpi(ALICE), room(version, { powerLevels }), version);
      refused(tpi(BOB), room(version, { powerLevels, members: { [BOB]: 'join' } }), version, '6');
    });

    it(`v${version}: the event type's required level: events, then state_default / events_default`, () => {
      const members = { [BOB]: 'join', [MOD]: 'join' };
      const topic = (sender: string) => event('m.room.topic', sender, { topic: 't' }, '');
      refused(topic(BOB), room(version, { members }), version, '7'); // state_default 50
      allowed(topic(MOD), room(version, { members }), version);
      const strict = { users: { [ALICE]: 100, [MOD]: 50 }, events_default: 10, events: { 'm.room.topic': 0, 'm.sticker': 60 } };
      allowed(topic(BOB), room(version, { powerLevels: strict, members }), version);
      refused(event('m.room.message', BOB, { body: 'x' }), room(version, { powerLevels: strict, members }), version, '7');
      refused(event('m.sticker', MOD, { body: 'x' }), room(version, { powerLevels: strict, members }), version, '7');
      allowed(event('m.sticker', ALICE, { body: 'x' }), room(version, { powerLevels: strict, members }), version);
    });

    it(`v${version}: without a power levels event, state events need 50: the creator may, others may not`, () => {
      const state = room(version, { powerLevels: null, members: { [BOB]: 'join' } });
      allowed(event('m.room.name', ALICE, { name: 'n' }, ''), state, version);
      refused(event('m.room.name', BOB, { name: 'n' }, ''), state, version, '7');
      allowed(event('m.room.message', BOB, { body: 'x' }), state, version);
    });

    it(`v${version}: a state key that is a user ID must be the sender's`, () => {
      const powerLevels = { users: { [ALICE]: 100 }, state_default: 0 };
      const state = room(version, { powerLevels, members: { [BOB]: 'join' } });
      allowed(event('org.example.status', BOB, { s: 1 }, BOB), state, version);
      allowed(event('org.example.status', BOB, { s: 1 }, 'bob'), state, version);
      refused(event('org.example.status', BOB, { s: 1 }, ALICE), state, version, '8');
      refused(event('org.example.status', BOB, { s: 1 }, '@other'), state, version, '8');
    });

    it(`v${version}: a redaction passes auth like any event (the redact level is not an auth rule)`, () => {
      const members = { [BOB]: 'join' };
      const redaction = event('m.room.redaction', BOB, { redacts: '$someone-elses' });
      allowed(redaction, room(version, { members }), version);
      const gated = { users: { [ALICE]: 100 }, events: { 'm.room.redaction': 50 } };
      refused(redaction, room(version, { powerLevels: gated, members }), version, '7');
    });
  }
});

describe('m.room.power_levels (rule 9)', () => {
  const pl = (sender: string, content: JsonObject) => event('m.room.power_levels', sender, content, '');
  const CURRENT = {
    users: { [ALICE]: 100, [MOD]: 50, [MOD2]: 50, [CAROL]: 10 },
    users_default: 0,
    events: { 'm.room.power_levels': 50, 'm.room.tombstone': 100, 'm.room.name': 50 },
    notifications: { room: 50 },
    ban: 50,
    kick: 100,
  };
  const members = { [MOD]: 'join', [MOD2]: 'join', [CAROL]: 'join', [BOB]: 'join' };
  const withUsers = (users: JsonObject, extra: JsonObject = {}) => ({ ...CURRENT, ...extra, users: { ...CURRENT.users, ...users } });

  for (const version of VERSIONS) {
    const state = () => room(version, { powerLevels: CURRENT, members });

    it(`v${version}: the first power levels event is allowed to the creator`, () => {
      const initial = initialPowerLevels({ creator: ALICE, preset: 'private_chat' });
      allowed(pl(ALICE, initial), room(version, { powerLevels: null }), version);
      refused(pl(BOB, initial), room(version, { powerLevels: null, members: { [BOB]: 'join' } }), version, '7');
    });

    it(`v${version}: users entries: raise up to one's level, never above; peers and superiors untouchable; lower oneself`, () => {
      allowed(pl(MOD, withUsers({ [BOB]: 50 })), state(), version);
      allowed(pl(MOD, withUsers({ [CAROL]: 0 })), state(), version); // demote someone below
      refused(pl(MOD, withUsers({ [BOB]: 51 })), state(), version, '9.9.1');
      refused(pl(MOD, withUsers({ [MOD2]: 0 })), state(), version, '9.8.1'); // a peer at the same level
      refused(pl(MOD, withUsers({ [ALICE]: 0 })), state(), version, '9.8.1');
      const { [MOD2]: _removed, ...withoutMod2 } = CURRENT.users;
      refused(pl(MOD, { ...CURRENT, users: withoutMod2 }), state(), version, '9.8.1');
      allowed(pl(MOD, withUsers({ [MOD]: 10 })), state(), version); // lowering oneself
      refused(pl(MOD, withUsers({ [MOD]: 60 })), state(), version, '9.9.1'); // raising oneself
      allowed(pl(ALICE, withUsers({ [ALICE]: 50 })), state(), version);
    });

    it(`v${version}: top-level levels: neither the old nor the new value above the sender's`, () => {
      allowed(pl(MOD, { ...CURRENT, ban: 40 }), state(), version);
      refused(pl(MOD, { ...CURRENT, ban: 60 }), state(), version, '9.5.2');
      refused(pl(MOD, { ...CURRENT, kick: 50 }), state(), version, '9.5.1'); // kick is 100
      const { kick: _kick, ...withoutKick } = CURRENT;
      refused(pl(MOD, withoutKick), state(), version, '9.5.1'); // removing it
      refused(pl(MOD, { ...CURRENT, state_default: 51 }), state(), version, '9.5.2'); // adding one above
      allowed(pl(MOD, { ...CURRENT, state_default: 50 }), state(), version);
      allowed(pl(ALICE, { ...CURRENT, kick: 50 }), state(), version);
    });

    it(`v${version}: events and notifications entries: neither the old nor the new value above the sender's`, () => {
      allowed(pl(MOD, { ...CURRENT, events: { ...CURRENT.events, 'm.room.topic': 40 } }), state(), version);
      refused(pl(MOD, { ...CURRENT, events: { ...CURRENT.events, 'm.room.topic': 60 } }), state(), version, '9.7.1');
      refused(pl(MOD, { ...CURRENT, events: { ...CURRENT.events, 'm.room.tombstone': 50 } }), state(), version, '9.6.1');
      refused(pl(MOD, { ...CURRENT, notifications: { room: 60 } }), state(), version, '9.7.1');
      allowed(pl(MOD, { ...CURRENT, notifications: { room: 0 } }), state(), version);
      allowed(pl(ALICE, { ...CURRENT, events: { ...CURRENT.events, 'm.room.tombstone': 50 } }), state(), version);
    });

    it(`v${version}: every level must be an integer: strings, floats and unsafe integers are refused`, () => {
      for (const key of ['users_default', 'events_default', 'state_default', 'ban', 'redact', 'kick', 'invite']) {
        refused(pl(ALICE, { ...CURRENT, [key]: '50' }), state(), version, '9.1');
        refused(pl(ALICE, { ...CURRENT, [key]: 50.5 }), state(), version, '9.1');
        refused(pl(ALICE, { ...CURRENT, [key]: null }), state(), version, '9.1');
      }
      refused(pl(ALICE, { ...CURRENT, ban: 2 ** 53 }), state(), version, '9.1');
      refused(pl(ALICE, { ...CURRENT, events: { 'm.room.name': '50' } }), state(), version, '9.2');
      refused(pl(ALICE, { ...CURRENT, notifications: { room: 1.5 } }), state(), version, '9.2');
      refused(pl(ALICE, { ...CURRENT, events: [50] }), state(), version, '9.2');
      refused(pl(ALICE, withUsers({ [BOB]: '50' })), state(), version, '9.3');
      refused(pl(ALICE, withUsers({ [BOB]: 0.5 })), state(), version, '9.3');
      refused(pl(ALICE, { ...CURRENT, users: [] }), state(), version, '9.3');
      // Checked before "no previous power levels: allow".
      refused(pl(ALICE, { ban: '50' }), room(version, { powerLevels: null }), version, '9.1');
      allowed(pl(ALICE, { ...CURRENT, ban: -5, users: { ...CURRENT.users, [BOB]: -(2 ** 53 - 1) } }), state(), version);
    });

    it(`v${version}: users keys must be valid user IDs`, () => {
      for (const bad of ['bob', '@bob', 'bob:example.org', '@bob:exa mple.org', '@b\u0000b:example.org', `@${'a'.repeat(250)}:example.org`]) {
        refused(pl(ALICE, withUsers({ [bad]: 0 })), state(), version, '9.3');
      }
      // Historical user IDs are valid, as are IP literals and ports.
      for (const good of ['@Bob:example.org', '@:example.org', '@bob:[::1]:8448', '@bob:127.0.0.1:8008']) {
        allowed(pl(ALICE, withUsers({ [good]: 0 })), state(), version);
      }
    });
  }
});

describe('helpers', () => {
  it('authEventsSelection: create, power levels and the sender; members add target, join rules, authoriser, 3PID invite', () => {
    const [C, P, J] = [stateKeyOf('m.room.create', ''), stateKeyOf('m.room.power_levels', ''), stateKeyOf('m.room.join_rules', '')];
    const m = (user: string) => stateKeyOf('m.room.member', user);
    assert.deepEqual(authEventsSelection('m.room.create', ALICE, { room_version: '11' }, ''), []);
    assert.deepEqual(authEventsSelection('m.room.message', BOB, { body: 'x' }, undefined), [C, P, m(BOB)]);
    assert.deepEqual(authEventsSelection('m.room.member', BOB, { membership: 'join' }, BOB), [C, P, m(BOB), J]);
    assert.deepEqual(authEventsSelection('m.room.member', ALICE, { membership: 'invite' }, BOB), [C, P, m(ALICE), m(BOB), J]);
    assert.deepEqual(authEventsSelection('m.room.member', BOB, { membership: 'knock' }, BOB), [C, P, m(BOB), J]);
    assert.deepEqual(authEventsSelection('m.room.member', ALICE, { membership: 'leave' }, BOB), [C, P, m(ALICE), m(BOB)]);
    assert.deepEqual(authEventsSelection('m.room.member', ALICE, { membership: 'ban' }, BOB), [C, P, m(ALICE), m(BOB)]);
    assert.deepEqual(
      authEventsSelection('m.room.member', BOB, { membership: 'join', join_authorised_via_users_server: MOD }, BOB),
      [C, P, m(BOB), J, m(MOD)],
    );
    assert.deepEqual(
      authEventsSelection('m.room.member', ALICE, { membership: 'invite', third_party_invite: { signed: { mxid: BOB, token: 'tok' } } }, BOB),
      [C, P, m(ALICE), m(BOB), J, stateKeyOf('m.room.third_party_invite', 'tok')],
    );
    // join_authorised_via_users_server counts only on joins.
    assert.deepEqual(authEventsSelection('m.room.member', BOB, { membership: 'leave', join_authorised_via_users_server: MOD }, BOB), [C, P, m(BOB)]);
  });

  it('authEventIds: the selected events present in the state', () => {
    const state = room('11', { members: { [BOB]: 'invite' } });
    const ids = authEventIds({ type: 'm.room.member', sender: BOB, content: { membership: 'join' }, state_key: BOB }, state);
    const expected = ['m.room.create', 'm.room.power_levels', 'm.room.member', 'm.room.join_rules'].map(
      (type) => state.get(stateKeyOf(type, type === 'm.room.member' ? BOB : ''))?.event_id,
    );
    assert.deepEqual(ids, expected);
    const noPl = room('11', { powerLevels: null });
    assert.deepEqual(authEventIds({ type: 'm.room.message', sender: ALICE, content: {} }, noPl), [
      noPl.get(stateKeyOf('m.room.create', ''))?.event_id,
      noPl.get(stateKeyOf('m.room.member', ALICE))?.event_id,
    ]);
  });

  it('powerLevelOf, requiredPowerLevel, actionPowerLevel and notificationPowerLevel read the defaults of the spec', () => {
    const none = room('11', { powerLevels: null });
    assert.equal(powerLevelOf(ALICE, none, '11'), 100);
    assert.equal(powerLevelOf(BOB, none, '11'), 0);
    assert.equal(requiredPowerLevel('m.room.topic', true, none), 50);
    assert.equal(requiredPowerLevel('m.room.message', false, none), 0);
    assert.deepEqual(
      (['invite', 'kick', 'ban', 'redact'] as const).map((a) => actionPowerLevel(a, none)),
      [0, 50, 50, 50],
    );
    assert.equal(notificationPowerLevel('room', none), 50);

    const custom = room('11', {
      powerLevels: { users: { [BOB]: 7 }, users_default: 3, state_default: 20, events_default: 5, events: { 'm.room.message': 1 }, invite: 9, notifications: { room: 4 } },
    });
    assert.equal(powerLevelOf(ALICE, custom, '11'), 3); // the creator has no special level once power levels exist
    assert.equal(powerLevelOf(BOB, custom, '11'), 7);
    assert.equal(requiredPowerLevel('m.room.topic', true, custom), 20);
    assert.equal(requiredPowerLevel('m.room.message', false, custom), 1);
    assert.equal(requiredPowerLevel('m.reaction', false, custom), 5);
    assert.equal(requiredPowerLevel('constructor', false, custom), 5);
    assert.equal(actionPowerLevel('invite', custom), 9);
    assert.equal(actionPowerLevel('kick', custom), 50);
    assert.equal(notificationPowerLevel('room', custom), 4);
  });

  it('membershipOf and joinRuleOf', () => {
    const state = room('11', { joinRule: 'invite', members: { [BOB]: 'invite', [CAROL]: 'ban' } });
    assert.equal(membershipOf(ALICE, state), 'join');
    assert.equal(membershipOf(BOB, state), 'invite');
    assert.equal(membershipOf(CAROL, state), 'ban');
    assert.equal(membershipOf(EVE, state), 'leave');
    assert.equal(joinRuleOf(state), 'invite');
    assert.equal(joinRuleOf(room('11', { joinRule: null })), undefined);
  });

  it('canRedact: one\'s own events always, others\' with the redact level', () => {
    for (const version of VERSIONS) {
      const state = room(version, { members: { [BOB]: 'join', [MOD]: 'join' } });
      assert.equal(canRedact(BOB, BOB, state, version), true);
      assert.equal(canRedact(BOB, ALICE, state, version), false);
      assert.equal(canRedact(MOD, BOB, state, version), true); // 50 >= redact 50
      assert.equal(canRedact(ALICE, MOD, state, version), true);
      const strict = room(version, { powerLevels: { users: { [ALICE]: 100, [MOD]: 50 }, redact: 60 } });
      assert.equal(canRedact(MOD, BOB, strict, version), false);
      assert.equal(canRedact(EVE, BOB, state, version), false); // another server's user, no power
    }
  });

  it('isValidUserId', () => {
    assert.equal(isValidUserId('@alice:example.org'), true);
    assert.equal(isValidUserId('@alice:example.org:8448'), true);
    assert.equal(isValidUserId('@alice:'), false);
    assert.equal(isValidUserId('alice:example.org'), false);
  });
});

describe('a createRoom sequence passes auth event by event', () => {
  for (const version of VERSIONS) {
    for (const preset of ['private_chat', 'trusted_private_chat', 'public_chat'] as const) {
      it(`v${version} ${preset}`, () => {
        const state = new Map<string, StoredEvent>();
        let prev: string[] = [];
        const send = (type: string, sender: string, content: JsonObject, stateKey?: string) => {
          authorize({ type, sender, content, room_id: ROOM, prev_events: prev, ...(stateKey === undefined ? {} : { state_key: stateKey }) }, state, version);
          const e = stored(type, sender, content, stateKey);
          prev = [e.event_id];
          if (stateKey !== undefined) state.set(stateKeyOf(type, stateKey), e);
        };
        send('m.room.create', ALICE, version === '10' ? { room_version: '10', creator: ALICE } : { room_version: '11' }, '');
        send('m.room.member', ALICE, { membership: 'join' }, ALICE);
        send('m.room.power_levels', ALICE, initialPowerLevels({ creator: ALICE, preset, invitees: [BOB] }), '');
        send('m.room.join_rules', ALICE, { join_rule: preset === 'public_chat' ? 'public' : 'invite' }, '');
        send('m.room.history_visibility', ALICE, { history_visibility: 'shared' }, '');
        send('m.room.guest_access', ALICE, { guest_access: preset === 'public_chat' ? 'forbidden' : 'can_join' }, '');
        send('m.room.name', ALICE, { name: 'Room' }, '');
        send('m.room.member', ALICE, { membership: 'invite' }, BOB);
        send('m.room.member', BOB, { membership: 'join' }, BOB);
        send('m.room.message', BOB, { msgtype: 'm.text', body: 'hello' });
        // Bob invites Carol: any member may in the private presets (invite 0), not in public_chat (50),
        // except Bob is at the creator's level in trusted_private_chat.
        const invite = { type: 'm.room.member', sender: BOB, content: { membership: 'invite' }, state_key: CAROL, room_id: ROOM, prev_events: prev };
        if (preset === 'public_chat') refused(invite, state, version, '4.4.5');
        else allowed(invite, state, version);
        const rename = { type: 'm.room.name', sender: BOB, content: { name: 'Mine' }, state_key: '', room_id: ROOM, prev_events: prev };
        if (preset === 'trusted_private_chat') allowed(rename, state, version);
        else refused(rename, state, version, '7');
      });
    }
  }
});
