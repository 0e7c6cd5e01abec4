import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as sdk from 'matrix-js-sdk';
import { enc, roomActions, type User } from './helpers/room-actions.js';
import { prepared, SdkClients, waitFor } from './helpers/sdk.js';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

type Json = Record<string, unknown>;
type StateEvent = { type: string; state_key: string; content: Json; event_id: string; sender: string };

// Both engines: an upgrade writes two rooms in two transactions (each under its room's row lock on
// PostgreSQL) and moves alias rows between them; concurrent upgrades race on those locks.
for (const engine of ENGINES) {
  describe(`room upgrades (${engine})`, () => {
    let server: TestServer;
    let alice: User;
    let bob: User;
    let carol: User;
    const actions = roomActions(() => server);
    const as = (who: User) => ({ token: who.access_token });

    before(async () => {
      server = await startTestServer(engine, { allow_guest_access: true });
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
      carol = await server.api.register('carol');
    });
    after(async () => server.close());

    const state = async (who: User, roomId: string): Promise<StateEvent[]> => {
      const res = await server.api.get<StateEvent[]>(`/v3/rooms/${enc(roomId)}/state`, as(who));
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    };
    const stateOf = (events: StateEvent[], type: string, stateKey = '') => events.find((e) => e.type === type && e.state_key === stateKey);
    const putState = async (who: User, roomId: string, type: string, content: Json, stateKey = '') => {
      const res = await server.api.put(`/v3/rooms/${enc(roomId)}/state/${type}/${enc(stateKey)}`, content, as(who));
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const upgrade = (who: User, roomId: string, body: Json = { new_version: '11' }) => server.api.post<Json>(`/v3/rooms/${enc(roomId)}/upgrade`, body, as(who));
    const stateCount = async (roomId: string) => (await state(alice, roomId)).length;

    it('tombstones the old room, copies its state to a new room naming it as predecessor, moves aliases and the directory entry, and silences the old room', async () => {
      const old = await actions.createRoom(alice, {
        preset: 'public_chat',
        room_version: '10',
        visibility: 'public',
        room_alias_name: 'town',
        name: 'Town square',
        topic: 'All welcome',
        initial_state: [
          { type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } },
          { type: 'm.room.avatar', state_key: '', content: { url: 'mxc://test.local/avatar' } },
          { type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } },
        ],
      });
      await actions.join(bob, old);
      await actions.join(carol, old);
      const side = await server.api.put(`/v3/directory/room/${enc('#side:test.local')}`, { room_id: old }, as(alice));
      assert.equal(side.status, 200);
      await putState(alice, old, 'm.room.canonical_alias', { alias: '#town:test.local', alt_aliases: ['#side:test.local'] });
      const oldLevels = stateOf(await state(alice, old), 'm.room.power_levels')!.content;
      await putState(alice, old, 'm.room.power_levels', { ...oldLevels, users: { ...(oldLevels.users as Json), [bob.user_id]: 50 } });
      assert.equal((await server.api.post(`/v3/rooms/${enc(old)}/ban`, { user_id: carol.user_id, reason: 'spam' }, as(alice))).status, 200);
      const last = await actions.send(bob, old, 'last words');

      const res = await upgrade(alice, old);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const replacement = res.body.replacement_room as string;
      assert.match(replacement, /^!.+:test\.local$/);
      assert.notEqual(replacement, old);

      const oldState = await state(alice, old);
      const tombstone = stateOf(oldState, 'm.room.tombstone')!;
      assert.deepEqual(tombstone.content, { body: 'This room has been replaced', replacement_room: replacement });
      assert.equal(tombstone.sender, alice.user_id);
      const restricted = stateOf(oldState, 'm.room.power_levels')!.content;
      assert.equal(restricted.events_default, 50);
      assert.equal(restricted.invite, 50);
      assert.deepEqual(restricted.users, { [alice.user_id]: 100, [bob.user_id]: 50 });
      assert.deepEqual(stateOf(oldState, 'm.room.canonical_alias')!.content, {}, 'the local aliases left the old room’s canonical alias');

      const newState = await state(alice, replacement);
      const create = stateOf(newState, 'm.room.create')!;
      assert.equal(create.content.room_version, '11');
      assert.equal(create.content.creator, undefined, 'v11 has no creator field');
      assert.deepEqual(create.content.predecessor, { room_id: old, event_id: last });
      assert.equal(create.sender, alice.user_id);
      assert.deepEqual(stateOf(newState, 'm.room.name')!.content, { name: 'Town square' });
      assert.deepEqual(stateOf(newState, 'm.room.topic')!.content, { topic: 'All welcome' });
      assert.deepEqual(stateOf(newState, 'm.room.encryption')!.content, { algorithm: 'm.megolm.v1.aes-sha2' });
      assert.deepEqual(stateOf(newState, 'm.room.avatar')!.content, { url: 'mxc://test.local/avatar' });
      assert.deepEqual(stateOf(newState, 'm.room.join_rules')!.content, { join_rule: 'public' });
      assert.deepEqual(stateOf(newState, 'm.room.history_visibility')!.content, { history_visibility: 'joined' });
      assert.deepEqual(stateOf(newState, 'm.room.guest_access')!.content, { guest_access: 'forbidden' });
      const newLevels = stateOf(newState, 'm.room.power_levels')!.content;
      assert.deepEqual(newLevels.users, { [alice.user_id]: 100, [bob.user_id]: 50 });
      assert.equal(newLevels.events_default, 0, 'the new room keeps the old room’s levels, not the restricted ones');
      assert.equal(stateOf(newState, 'm.room.member', carol.user_id)?.content.membership, 'ban');
      assert.equal(stateOf(newState, 'm.room.member', carol.user_id)?.content.reason, 'spam');
      assert.equal(stateOf(newState, 'm.room.member', alice.user_id)?.content.membership, 'join');
      assert.equal(stateOf(newState, 'm.room.member', bob.user_id), undefined, 'members are not carried over');
      assert.deepEqual(stateOf(newState, 'm.room.canonical_alias')!.content, { alias: '#town:test.local', alt_aliases: ['#side:test.local'] });

      for (const alias of ['#town:test.local', '#side:test.local']) {
        const lookup = await server.api.get(`/v3/directory/room/${enc(alias)}`);
        assert.equal(lookup.body.room_id, replacement, alias);
      }
      assert.equal((await server.api.get(`/v3/directory/list/room/${enc(old)}`)).body.visibility, 'private');
      assert.equal((await server.api.get(`/v3/directory/list/room/${enc(replacement)}`)).body.visibility, 'public');
      const listed = (await server.api.get<{ chunk: { room_id: string }[] }>('/v3/publicRooms', as(alice))).body.chunk.map((c) => c.room_id);
      assert.ok(listed.includes(replacement) && !listed.includes(old), JSON.stringify(listed));

      // Bob (level 50) can no longer talk in the old room, nor invite; he can join the new one.
      const refused = await server.api.put(`/v3/rooms/${enc(old)}/send/m.room.message/late`, { msgtype: 'm.text', body: 'late' }, as(bob));
      assert.equal(refused.status, 200, 'level 50 still meets the restricted level of 50');
      const dave = await server.api.register('dave');
      await actions.join(dave, old);
      const silenced = await server.api.put(`/v3/rooms/${enc(old)}/send/m.room.message/d1`, { msgtype: 'm.text', body: 'hello?' }, as(dave));
      assert.equal(silenced.status, 403);
      assert.equal(silenced.body.errcode, 'M_FORBIDDEN');
      await actions.join(bob, replacement);
      await actions.send(bob, replacement, 'hello new room');
    });

    it('raises the upgrader just enough to copy the state, then restores the old levels', async () => {
      const old = await actions.createRoom(alice, { preset: 'private_chat' });
      await server.api.post(`/v3/rooms/${enc(old)}/invite`, { user_id: bob.user_id }, as(alice));
      await actions.join(bob, old);
      const levels = stateOf(await state(alice, old), 'm.room.power_levels')!.content;
      // Bob (60) may send the tombstone (60) but not m.room.server_acl or m.room.power_levels (100),
      // which the new room needs from him: he is raised to 100 there while the state is copied.
      await putState(alice, old, 'm.room.power_levels', { ...levels, events: { ...(levels.events as Json), 'm.room.tombstone': 60 }, users: { [alice.user_id]: 100, [bob.user_id]: 60 } });
      await putState(alice, old, 'm.room.server_acl', { allow: ['*'], deny: ['evil.example'], allow_ip_literals: false });
      const res = await upgrade(bob, old);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const replacement = res.body.replacement_room as string;
      const events = await state(bob, replacement);
      assert.deepEqual(stateOf(events, 'm.room.server_acl')!.content, { allow: ['*'], deny: ['evil.example'], allow_ip_literals: false });
      const restored = events.filter((e) => e.type === 'm.room.power_levels');
      assert.equal(restored.length, 1);
      assert.deepEqual((restored[0]!.content.users as Json)[bob.user_id], 60, 'Bob is back at his old level');
      const history = await server.api.get<{ chunk: StateEvent[] }>(`/v3/rooms/${enc(replacement)}/messages?dir=b&limit=50`, as(bob));
      const levelEvents = history.body.chunk.filter((e) => e.type === 'm.room.power_levels');
      assert.equal(levelEvents.length, 2, 'the raised levels, then the old ones');
      assert.equal((levelEvents.at(-1)!.content.users as Json)[bob.user_id], 100, 'the first levels, oldest, had Bob at 100');
    });

    it('carries a space’s type, m.federate and its current children over; a removed child stays behind', async () => {
      const space = await actions.createRoom(alice, { preset: 'private_chat', creation_content: { type: 'm.space', 'm.federate': false } });
      const via = { via: ['test.local'] };
      await putState(alice, space, 'm.space.child', via, '!kept:test.local');
      await putState(alice, space, 'm.space.child', via, '!removed:test.local');
      await putState(alice, space, 'm.space.child', {}, '!removed:test.local');
      const res = await upgrade(alice, space);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const events = await state(alice, res.body.replacement_room as string);
      const create = stateOf(events, 'm.room.create')!.content;
      assert.equal(create.type, 'm.space');
      assert.equal(create['m.federate'], false);
      assert.deepEqual(stateOf(events, 'm.space.child', '!kept:test.local')?.content, via);
      assert.equal(stateOf(events, 'm.space.child', '!removed:test.local'), undefined);
    });

    it('refuses a member without the power to send m.room.tombstone (403), and writes nothing', async () => {
      const old = await actions.createRoom(alice, { preset: 'public_chat', room_alias_name: 'keep' });
      await actions.join(bob, old);
      const before = await stateCount(old);
      const bobRooms = (await server.api.get<{ joined_rooms: string[] }>('/v3/joined_rooms', as(bob))).body.joined_rooms.length;
      const res = await upgrade(bob, old);
      assert.equal(res.status, 403);
      assert.equal(res.body.errcode, 'M_FORBIDDEN');
      assert.equal(await stateCount(old), before);
      assert.equal((await server.api.get(`/v3/directory/room/${enc('#keep:test.local')}`)).body.room_id, old);
      const outsider = await upgrade(carol, old);
      assert.equal(outsider.status, 403);
      const unknown = await upgrade(alice, '!nowhere:test.local');
      assert.equal(unknown.status, 403);
      const guest = (await server.api.post<User>('/v3/register?kind=guest', {})).body;
      const asGuest = await upgrade(guest, old);
      assert.equal(asGuest.status, 403);
      assert.equal(asGuest.body.errcode, 'M_GUEST_ACCESS_FORBIDDEN');
      const rooms = async () => (await server.api.get<{ joined_rooms: string[] }>('/v3/joined_rooms', as(bob))).body.joined_rooms;
      assert.equal((await rooms()).length, bobRooms, 'no replacement room was made for the refused user');
    });

    it('refuses a room version the server does not support (400 M_UNSUPPORTED_ROOM_VERSION) and a body without one (400)', async () => {
      const old = await actions.createRoom(alice);
      const before = await stateCount(old);
      for (const version of ['12', '9', '1', 'org.example.custom']) {
        const res = await upgrade(alice, old, { new_version: version });
        assert.equal(res.status, 400, version);
        assert.equal(res.body.errcode, 'M_UNSUPPORTED_ROOM_VERSION', version);
      }
      const missing = await upgrade(alice, old, {});
      assert.equal(missing.status, 400);
      assert.equal(await stateCount(old), before);
    });

    it('two upgrades of one room at once: the same user gets one replacement room (again just after), another user an error (while it runs and just after)', async () => {
      const old = await actions.createRoom(alice, { preset: 'public_chat', power_level_content_override: { users: { [alice.user_id]: 100, [bob.user_id]: 100 } } });
      await actions.join(bob, old);
      const [first, second, other] = await Promise.all([upgrade(alice, old), upgrade(alice, old), upgrade(bob, old)]);
      assert.equal(first.status, 200, JSON.stringify(first.body));
      assert.equal(second.status, 200, JSON.stringify(second.body));
      assert.equal(second.body.replacement_room, first.body.replacement_room);
      assert.equal(other.status, 400, JSON.stringify(other.body));
      const tombstones = (await server.api.get<{ chunk: StateEvent[] }>(`/v3/rooms/${enc(old)}/messages?dir=b&limit=50`, as(alice))).body.chunk.filter((e) => e.type === 'm.room.tombstone');
      assert.equal(tombstones.length, 1);
      const again = await upgrade(alice, old);
      assert.equal(again.body.replacement_room, first.body.replacement_room, 'as Synapse: a repeat within minutes answers the same room');
    });

    // Per-user state, as Synapse's copy_user_state_on_room_upgrade: tags, m.direct, push rules about the room.
    const tagsOf = async (who: User, roomId: string) => {
      const res = await server.api.get<{ tags: Json }>(`/v3/user/${enc(who.user_id)}/rooms/${enc(roomId)}/tags`, as(who));
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.tags;
    };
    const tag = async (who: User, roomId: string, name: string, content: Json = {}) => {
      const res = await server.api.put(`/v3/user/${enc(who.user_id)}/rooms/${enc(roomId)}/tags/${enc(name)}`, content, as(who));
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const putDirect = async (who: User, content: Json) => {
      const res = await server.api.put(`/v3/user/${enc(who.user_id)}/account_data/m.direct`, content, as(who));
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const direct = async (who: User) => (await server.api.get<Json>(`/v3/user/${enc(who.user_id)}/account_data/m.direct`, as(who))).body;
    const putRule = async (who: User, kind: string, ruleId: string, body: Json) => {
      const res = await server.api.put(`/v3/pushrules/global/${kind}/${enc(ruleId)}`, body, as(who));
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const rule = (who: User, kind: string, ruleId: string) => server.api.get<Json>(`/v3/pushrules/global/${kind}/${enc(ruleId)}`, as(who));
    const roomCondition = (roomId: string) => ({ kind: 'event_match', key: 'room_id', pattern: roomId });
    /** Tags, an m.direct entry and push rules about `roomId`, with a few that are not about it. */
    const personalise = async (who: User, roomId: string, prefix: string) => {
      await tag(who, roomId, 'm.favourite', { order: 0.25 });
      await tag(who, roomId, `u.${prefix}`);
      await putDirect(who, { '@someone:test.local': ['!elsewhere:test.local', roomId], '@other:test.local': ['!elsewhere:test.local'] });
      await putRule(who, 'room', roomId, { actions: ['dont_notify'] });
      await putRule(who, 'override', `${prefix}-loud`, { conditions: [roomCondition(roomId), { kind: 'event_match', key: 'content.body', pattern: 'alarm' }], actions: ['notify', { set_tweak: 'sound', value: 'bell' }] });
      await putRule(who, 'underride', `${prefix}-elsewhere`, { conditions: [roomCondition('!elsewhere:test.local')], actions: ['notify'] });
      await putRule(who, 'room', '!elsewhere:test.local', { actions: ['notify'] });
    };
    /** Asserts what personalise() set about `oldRoom` is there for `newRoom` too (and still for `oldRoom`). */
    const assertCopied = async (who: User, oldRoom: string, newRoom: string, prefix: string) => {
      assert.deepEqual(await tagsOf(who, newRoom), { 'm.favourite': { order: 0.25 }, [`u.${prefix}`]: {} });
      assert.deepEqual(await direct(who), { '@someone:test.local': ['!elsewhere:test.local', oldRoom, newRoom], '@other:test.local': ['!elsewhere:test.local'] });
      const roomRule = await rule(who, 'room', newRoom);
      assert.equal(roomRule.status, 200, JSON.stringify(roomRule.body));
      assert.deepEqual(roomRule.body.actions, ['dont_notify']);
      assert.equal(roomRule.body.enabled, true);
      // Synapse names the copy of an override rule about the room by the new room's ID.
      const override = await rule(who, 'override', newRoom);
      assert.equal(override.status, 200, JSON.stringify(override.body));
      assert.deepEqual(override.body.conditions, [roomCondition(newRoom), { kind: 'event_match', key: 'content.body', pattern: 'alarm' }]);
      assert.deepEqual(override.body.actions, ['notify', { set_tweak: 'sound', value: 'bell' }]);
      assert.equal((await rule(who, 'override', `${prefix}-loud`)).status, 200, 'the old room’s rule stays');
      assert.equal((await rule(who, 'room', oldRoom)).status, 200);
      const all = (await server.api.get<{ global: Record<string, { rule_id: string }[]> }>('/v3/pushrules/', as(who))).body.global;
      assert.ok(!all.underride!.some((r) => r.rule_id === newRoom), 'a rule about another room is not copied');
      assert.deepEqual(all.room!.map((r) => r.rule_id), [newRoom, '!elsewhere:test.local', oldRoom], 'the copy comes first, as Synapse adds it');
    };
    const assertNothingCopied = async (who: User, oldRoom: string, newRoom: string) => {
      assert.deepEqual(await tagsOf(who, newRoom), {});
      assert.deepEqual(await direct(who), { '@someone:test.local': ['!elsewhere:test.local', oldRoom], '@other:test.local': ['!elsewhere:test.local'] });
      assert.equal((await rule(who, 'room', newRoom)).status, 404);
      assert.equal((await rule(who, 'override', newRoom)).status, 404);
    };
    /** The account data a sync since `since` brings: global by type, and the room's by type. */
    const accountDataSince = async (who: User, since: string, roomId: string) => {
      const body = await actions.sync(who, { since, timeout: 0 });
      const byType = (events: { type: string; content: Json }[] = []) => new Map(events.map((e) => [e.type, e.content]));
      return { global: byType(body.account_data.events), room: byType(body.rooms.join[roomId]?.account_data.events) };
    };

    it('copies the tags, m.direct entries and push rules about the old room of each local member, the upgrader’s in their sync; not those of a user who is not in it', async () => {
      const [upgrader, member, outsider, leaver] = await Promise.all(['copy-up', 'copy-member', 'copy-out', 'copy-left'].map((name) => server.api.register(name)));
      const old = await actions.createRoom(upgrader!, { preset: 'public_chat' });
      await actions.join(member!, old);
      await actions.join(leaver!, old);
      for (const [who, prefix] of [[upgrader!, 'up'], [member!, 'member'], [outsider!, 'out'], [leaver!, 'left']] as const) await personalise(who, old, prefix);
      assert.equal((await server.api.post(`/v3/rooms/${enc(old)}/leave`, {}, as(leaver!))).status, 200);
      // A disabled rule about the room is not copied (as Synapse).
      await putRule(member!, 'underride', 'member-off', { conditions: [roomCondition(old)], actions: ['notify'] });
      assert.equal((await server.api.put(`/v3/pushrules/global/underride/member-off/enabled`, { enabled: false }, as(member!))).status, 200);
      const since = (await actions.sync(upgrader!)).next_batch;

      const res = await upgrade(upgrader!, old);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const replacement = res.body.replacement_room as string;

      await assertCopied(upgrader!, old, replacement, 'up');
      const seen = await accountDataSince(upgrader!, since, replacement);
      assert.deepEqual(seen.room.get('m.tag'), { tags: { 'm.favourite': { order: 0.25 }, 'u.up': {} } }, 'the tags in the upgrader’s sync');
      assert.deepEqual((seen.global.get('m.direct')!['@someone:test.local'] as string[]).at(-1), replacement, 'm.direct in the upgrader’s sync');
      const pushRules = seen.global.get('m.push_rules') as { global: Record<string, { rule_id: string }[]> } | undefined;
      assert.ok(pushRules?.global.room!.some((r) => r.rule_id === replacement), 'the copied rules in the upgrader’s sync');

      // A member at the time of the upgrade has theirs copied at once (Synapse), seen once they join.
      await assertCopied(member!, old, replacement, 'member');
      assert.equal((await rule(member!, 'underride', replacement)).status, 404);
      await actions.join(member!, replacement);
      await assertCopied(member!, old, replacement, 'member');
      const memberSync = await actions.sync(member!);
      const memberTags = memberSync.rooms.join[replacement]!.account_data.events.find((e) => e.type === 'm.tag');
      assert.deepEqual(memberTags?.content, { tags: { 'm.favourite': { order: 0.25 }, 'u.member': {} } });

      // Someone never in the old room, or who left it, gets nothing: not at the upgrade, not on joining.
      for (const who of [outsider!, leaver!]) {
        await assertNothingCopied(who, old, replacement);
        await actions.join(who, replacement);
        await assertNothingCopied(who, old, replacement);
      }
    });

    it('copies on a later join of the new room by a member of the old one, only what the new room lacks, into their sync', async () => {
      const [upgrader, late] = await Promise.all(['later-up', 'later-member'].map((name) => server.api.register(name)));
      const old = await actions.createRoom(upgrader!, { preset: 'public_chat' });
      const res = await upgrade(upgrader!, old);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const replacement = res.body.replacement_room as string;
      // Joined and personalised after the upgrade: nothing to copy at the upgrade, all of it on joining.
      await actions.join(late!, old);
      await personalise(late!, old, 'late');
      await tag(late!, replacement, 'm.favourite', { order: 0.75 });
      await putRule(late!, 'room', replacement, { actions: ['notify'] });
      const since = (await actions.sync(late!)).next_batch;

      await actions.join(late!, replacement);
      assert.deepEqual(await tagsOf(late!, replacement), { 'm.favourite': { order: 0.75 }, 'u.late': {} }, 'a tag the new room has keeps its content');
      assert.deepEqual((await rule(late!, 'room', replacement)).body.actions, ['notify'], 'a rule the new room has is kept');
      assert.deepEqual((await direct(late!))['@someone:test.local'], ['!elsewhere:test.local', old, replacement]);
      assert.deepEqual((await rule(late!, 'override', replacement)).body.conditions, [roomCondition(replacement), { kind: 'event_match', key: 'content.body', pattern: 'alarm' }]);

      const seen = await accountDataSince(late!, since, replacement);
      assert.deepEqual(seen.room.get('m.tag'), { tags: { 'm.favourite': { order: 0.75 }, 'u.late': {} } });
      assert.deepEqual((seen.global.get('m.direct')!['@someone:test.local'] as string[]).at(-1), replacement);
      const pushRules = seen.global.get('m.push_rules') as { global: Record<string, { rule_id: string }[]> } | undefined;
      assert.ok(pushRules?.global.override!.some((r) => r.rule_id === replacement), 'the copied override rule in the sync');

      // Joining through PUT state (a membership event of one's own) copies too.
      const [viaState] = await Promise.all(['later-state'].map((name) => server.api.register(name)));
      await actions.join(viaState!, old);
      await tag(viaState!, old, 'u.state');
      await putState(viaState!, replacement, 'm.room.member', { membership: 'join' }, viaState!.user_id);
      assert.deepEqual(await tagsOf(viaState!, replacement), { 'u.state': {} });
    });

    it('matrix-js-sdk sees the tombstone and follows it to the replacement room', async () => {
      const clients = new SdkClients(() => server.url);
      const client = clients.create({ userId: bob.user_id, accessToken: bob.access_token, deviceId: bob.device_id });
      try {
        const old = await actions.createRoom(alice, { preset: 'public_chat', name: 'SDK room' });
        await actions.join(bob, old);
        const ready = prepared(client);
        await client.startClient({ initialSyncLimit: 10 });
        await ready;
        // Listened for before the upgrade: the tombstone may reach Bob's client before the answer reaches us.
        const tombstoneSeen = waitFor<unknown>(
          (h) => {
            client.on(sdk.RoomStateEvent.Events, h);
            return () => client.off(sdk.RoomStateEvent.Events, h);
          },
          () => (client.getRoom(old)?.currentState.getStateEvents('m.room.tombstone', '') ?? null) !== null,
          'the tombstone in Bob’s client',
        );
        const res = await upgrade(alice, old);
        assert.equal(res.status, 200);
        const replacement = res.body.replacement_room as string;
        await tombstoneSeen;
        const room = client.getRoom(old)!;
        assert.equal(room.currentState.getStateEvents('m.room.tombstone', '')?.getContent().replacement_room, replacement);
        await client.joinRoom(replacement);
        await waitFor<unknown>(
          (h) => {
            client.on(sdk.ClientEvent.Room, h);
            client.on(sdk.RoomStateEvent.Events, h);
            return () => {
              client.off(sdk.ClientEvent.Room, h);
              client.off(sdk.RoomStateEvent.Events, h);
            };
          },
          () => client.getRoom(replacement)?.findPredecessor()?.roomId === old,
          'the replacement room’s predecessor in Bob’s client',
        );
        assert.equal(client.getRoom(replacement)!.name, 'SDK room');
      } finally {
        clients.stopAll();
      }
    });
  });
}

// Two processes share only the database: the upgrade's claim on the old room (migration 0025) is
// what makes one replacement room of two requests, whichever process each reaches.
describe('room upgrades through two processes on one PostgreSQL database', () => {
  let first: TestServer;
  let second: TestServer;
  let alice: User;
  let bob: User;
  const actions = roomActions(() => first);
  const upgradeVia = (server: TestServer, who: User, roomId: string) => server.api.post<Json>(`/v3/rooms/${enc(roomId)}/upgrade`, { new_version: '11' }, { token: who.access_token });
  const roomCount = async () => Number((await first.hs.services.store.db.kysely.selectFrom('rooms').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  const tombstones = async (roomId: string) =>
    (await first.hs.services.store.db.kysely.selectFrom('events').select('event_id').where('room_id', '=', roomId).where('type', '=', 'm.room.tombstone').execute()).length;

  before(async () => {
    first = await startTestServer('postgres');
    second = await startTestServer('postgres', {}, { database: first.config.database as unknown as Record<string, unknown> });
    alice = await first.api.register('alice');
    bob = await second.api.register('bob');
  });
  after(async () => {
    await second.close();
    await first.close();
  });

  it('the same user asking both processes at once, twice each: one replacement room, answered to all four', async () => {
    for (let round = 0; round < 3; round++) {
      const old = await actions.createRoom(alice, { preset: 'public_chat' });
      const rooms = await roomCount();
      const answers = await Promise.all([first, second, first, second].map((server) => upgradeVia(server, alice, old)));
      assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200], JSON.stringify(answers.map((a) => a.body)));
      assert.equal(new Set(answers.map((a) => a.body.replacement_room)).size, 1, `one replacement room in round ${round}`);
      assert.equal(await roomCount(), rooms + 1, 'exactly one room was made');
      assert.equal(await tombstones(old), 1);
      const again = await upgradeVia(round % 2 === 0 ? second : first, alice, old);
      assert.equal(again.body.replacement_room, answers[0]!.body.replacement_room, 'a repeat on either process answers the same room');
    }
  });

  it('two users asking one process each at once: one upgrades, the other gets 400 (then and after), one replacement room', async () => {
    for (let round = 0; round < 3; round++) {
      const old = await actions.createRoom(alice, { preset: 'public_chat', power_level_content_override: { users: { [alice.user_id]: 100, [bob.user_id]: 100 } } });
      await actions.join(bob, old);
      const rooms = await roomCount();
      const [a, b] = await Promise.all([upgradeVia(first, alice, old), upgradeVia(second, bob, old)]);
      const won = [a, b].filter((r) => r.status === 200);
      const lost = [a, b].filter((r) => r.status !== 200);
      assert.equal(won.length, 1, JSON.stringify([a.body, b.body]));
      assert.equal(lost[0]!.status, 400);
      assert.equal(lost[0]!.body.errcode, 'M_UNKNOWN');
      assert.equal(await roomCount(), rooms + 1, 'exactly one room was made');
      assert.equal(await tombstones(old), 1);
      const loser = a.status === 200 ? bob : alice;
      const late = await upgradeVia(a.status === 200 ? first : second, loser, old);
      assert.equal(late.status, 400, 'the other user is refused on the winner’s process too, once it is done');
    }
  });
});
