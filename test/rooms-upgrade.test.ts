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

    it('matrix-js-sdk sees the tombstone and follows it to the replacement room', async () => {
      const clients = new SdkClients(() => server.url);
      const client = clients.create({ userId: bob.user_id, accessToken: bob.access_token, deviceId: bob.device_id });
      try {
        const old = await actions.createRoom(alice, { preset: 'public_chat', name: 'SDK room' });
        await actions.join(bob, old);
        const ready = prepared(client);
        await client.startClient({ initialSyncLimit: 10 });
        await ready;
        const res = await upgrade(alice, old);
        assert.equal(res.status, 200);
        const replacement = res.body.replacement_room as string;
        await waitFor<unknown>(
          (h) => {
            client.on(sdk.RoomStateEvent.Events, h);
            return () => client.off(sdk.RoomStateEvent.Events, h);
          },
          () => (client.getRoom(old)?.currentState.getStateEvents('m.room.tombstone', '') ?? null) !== null,
          'the tombstone in Bob’s client',
        );
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
