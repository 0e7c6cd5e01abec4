import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultPowerLevels, initialPowerLevels, isRoomPreset, PRESETS } from '../src/services/rooms/power-levels.js';

const ALICE = '@alice:example.org';
const BOB = '@bob:example.org';
const CAROL = '@carol:example.org';

describe('new rooms: presets and power levels', () => {
  it('the defaults are Synapse\'s: creator 100, state 50, ban/kick/redact/invite 50, the protected event types', () => {
    assert.deepEqual(defaultPowerLevels(ALICE), {
      users: { [ALICE]: 100 },
      users_default: 0,
      events: {
        'm.room.name': 50,
        'm.room.power_levels': 100,
        'm.room.history_visibility': 100,
        'm.room.canonical_alias': 50,
        'm.room.avatar': 50,
        'm.room.tombstone': 100,
        'm.room.server_acl': 100,
        'm.room.encryption': 100,
      },
      events_default: 0,
      state_default: 50,
      ban: 50,
      kick: 50,
      redact: 50,
      invite: 50,
      notifications: { room: 50 },
    });
  });

  it('the preset table of createRoom', () => {
    assert.deepEqual(
      Object.fromEntries(Object.entries(PRESETS).map(([name, p]) => [name, [p.joinRule, p.historyVisibility, p.guestAccess, p.inviteesGetCreatorLevel]])),
      {
        private_chat: ['invite', 'shared', 'can_join', false],
        trusted_private_chat: ['invite', 'shared', 'can_join', true],
        // No m.room.guest_access event: absent means forbidden (Synapse's preset sends none).
        public_chat: ['public', 'shared', undefined, false],
      },
    );
    assert.equal(isRoomPreset('public_chat'), true);
    assert.equal(isRoomPreset('public'), false);
  });

  it('private presets let anyone invite; public_chat keeps invite at 50', () => {
    assert.equal(initialPowerLevels({ creator: ALICE, preset: 'private_chat' })['invite'], 0);
    assert.equal(initialPowerLevels({ creator: ALICE, preset: 'trusted_private_chat' })['invite'], 0);
    assert.equal(initialPowerLevels({ creator: ALICE, preset: 'public_chat' })['invite'], 50);
  });

  it('trusted_private_chat gives invitees the creator\'s level; the other presets do not', () => {
    assert.deepEqual(initialPowerLevels({ creator: ALICE, preset: 'trusted_private_chat', invitees: [BOB, CAROL] })['users'], {
      [ALICE]: 100,
      [BOB]: 100,
      [CAROL]: 100,
    });
    assert.deepEqual(initialPowerLevels({ creator: ALICE, preset: 'private_chat', invitees: [BOB] })['users'], { [ALICE]: 100 });
    assert.deepEqual(initialPowerLevels({ creator: ALICE, preset: 'public_chat', invitees: [BOB] })['users'], { [ALICE]: 100 });
  });

  it('power_level_content_override replaces top-level keys, including the preset\'s, shallowly', () => {
    const content = initialPowerLevels({
      creator: ALICE,
      preset: 'private_chat',
      invitees: [BOB],
      override: { invite: 25, users: { [BOB]: 50 }, events: { 'm.call.invite': 0 }, 'org.example.extra': true },
    });
    assert.equal(content['invite'], 25);
    assert.deepEqual(content['users'], { [BOB]: 50 }); // the whole map, creator included
    assert.deepEqual(content['events'], { 'm.call.invite': 0 });
    assert.equal(content['org.example.extra'], true);
    assert.equal(content['state_default'], 50);
  });

  it('each call returns fresh objects: the override and the presets are not shared or changed', () => {
    const override = { events: { 'm.room.topic': 0 } };
    const first = initialPowerLevels({ creator: ALICE, preset: 'public_chat', override });
    (first['events'] as Record<string, number>)['m.room.topic'] = 99;
    assert.deepEqual(override.events, { 'm.room.topic': 0 });
    const second = initialPowerLevels({ creator: ALICE, preset: 'private_chat' });
    (second['users'] as Record<string, number>)[BOB] = 1;
    assert.deepEqual(initialPowerLevels({ creator: ALICE, preset: 'private_chat' })['users'], { [ALICE]: 100 });
    assert.deepEqual(PRESETS.private_chat.powerLevelOverride, { invite: 0 });
  });

  it('an override key named __proto__ stays an ordinary key', () => {
    const override = JSON.parse('{"__proto__": {"polluted": 1}, "kick": 10}') as Record<string, unknown>;
    const content = initialPowerLevels({ creator: ALICE, preset: 'public_chat', override });
    assert.equal(Object.getPrototypeOf(content), Object.prototype);
    assert.deepEqual(Object.getOwnPropertyDescriptor(content, '__proto__')?.value, { polluted: 1 });
    assert.equal((content as { polluted?: unknown }).polluted, undefined);
    assert.equal(content['kick'], 10);
  });
});
