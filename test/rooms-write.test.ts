import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';

type Registered = { user_id: string; access_token: string; device_id: string };
const enc = encodeURIComponent;


for (const engine of HTTP_ENGINES) {
  describe(`rooms: creating and writing (${engine})`, () => {
    let server: TestServer;
    let alice: Registered;
    let bob: Registered;
    let carol: Registered;
    before(async () => {
      server = await startTestServer(engine);
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
      carol = await server.api.register('carol');
    });
    after(() => server.close());

    const createRoom = async (who: Registered, body: Record<string, unknown> = {}) => {
      const res = await server.api.post<{ room_id: string }>('/v3/createRoom', body, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.room_id;
    };
    const stateOf = async (roomId: string) => {
      const store = server.hs.services.store;
      const ids = await store.rooms.currentStateIds(roomId);
      const rows = await store.events.getMany(ids.map((i) => i.event_id));
      return new Map(rows.map((r) => [`${r.type}|${r.state_key}`, JSON.parse(r.pdu) as { content: Record<string, unknown>; sender: string }]));
    };
    const timeline = async (roomId: string) => {
      const rows = await server.hs.services.store.events.latest(roomId, 0, Number.MAX_SAFE_INTEGER, 1000);
      return rows.reverse();
    };

    it('creates a room with its events in the spec order, signed, chained and hashed', async () => {
      const roomId = await createRoom(alice, { name: 'Plans', topic: 'What next', invite: [bob.user_id], room_alias_name: 'plans' });
      assert.match(roomId, /^![A-Za-z]+:test\.local$|^![A-Za-z]+:/);
      const events = await timeline(roomId);
      assert.deepEqual(
        events.map((e) => `${e.type}|${e.state_key ?? ''}`),
        [
          'm.room.create|',
          `m.room.member|${alice.user_id}`,
          'm.room.power_levels|',
          'm.room.canonical_alias|',
          'm.room.join_rules|',
          'm.room.history_visibility|',
          'm.room.guest_access|',
          'm.room.name|',
          'm.room.topic|',
          `m.room.member|${bob.user_id}`,
        ],
      );
      // One chain: each event's only prev_event is the one before it, and depth grows by one.
      for (let i = 0; i < events.length; i++) {
        const pdu = JSON.parse(events[i]!.pdu) as { prev_events: string[]; depth: number; hashes: { sha256: string }; signatures: Record<string, Record<string, string>> };
        assert.deepEqual(pdu.prev_events, i === 0 ? [] : [events[i - 1]!.event_id]);
        assert.equal(pdu.depth, i + 1);
        assert.match(pdu.hashes.sha256, /^[A-Za-z0-9+/]{43}$/);
        assert.ok(Object.keys(pdu.signatures[server.config.server_name] ?? {}).length === 1, 'signed by the server');
        assert.match(events[i]!.event_id, /^\$[A-Za-z0-9_-]{43}$/);
      }
      const state = await stateOf(roomId);
      assert.equal(state.get('m.room.create|')?.content.room_version, '11');
      assert.equal(state.get('m.room.create|')?.content.creator, undefined, 'v11 drops creator');
      assert.equal(state.get('m.room.join_rules|')?.content.join_rule, 'invite');
      assert.equal((state.get('m.room.power_levels|')?.content.users as Record<string, number>)[alice.user_id], 100);
      assert.equal(state.get('m.room.power_levels|')?.content.invite, 0);
      const lookup = await server.api.get<{ room_id: string }>(`/v3/directory/room/${enc(`#plans:${server.config.server_name}`)}`);
      assert.equal(lookup.body.room_id, roomId);
    });

    it('creates v10 rooms with a creator, and refuses versions it does not support', async () => {
      const roomId = await createRoom(alice, { room_version: '10' });
      assert.equal((await stateOf(roomId)).get('m.room.create|')?.content.creator, alice.user_id);
      const refused = await server.api.post('/v3/createRoom', { room_version: '9' }, { token: alice.access_token });
      assert.equal(refused.status, 400);
      assert.equal(refused.body.errcode, 'M_UNSUPPORTED_ROOM_VERSION');
    });

    it('applies presets, initial_state, power_level_content_override and trusted_private_chat', async () => {
      const pub = await createRoom(alice, { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', content: { history_visibility: 'world_readable' } }] });
      const pubState = await stateOf(pub);
      assert.equal(pubState.get('m.room.join_rules|')?.content.join_rule, 'public');
      assert.equal(pubState.has('m.room.guest_access|'), false, 'public_chat sends no m.room.guest_access (absent is forbidden), as Synapse');
      assert.equal(pubState.get('m.room.history_visibility|')?.content.history_visibility, 'world_readable');
      const trusted = await createRoom(alice, { preset: 'trusted_private_chat', invite: [bob.user_id], is_direct: true, power_level_content_override: { events_default: 5 } });
      const trustedState = await stateOf(trusted);
      const pl = trustedState.get('m.room.power_levels|')!.content;
      assert.equal((pl.users as Record<string, number>)[bob.user_id], 100);
      assert.equal(pl.events_default, 5);
      assert.equal(trustedState.get(`m.room.member|${bob.user_id}`)?.content.is_direct, true);
    });

    it('joins, invites, kicks, bans and unbans by the auth rules', async () => {
      const roomId = await createRoom(alice, { preset: 'private_chat' });
      const token = (u: Registered) => ({ token: u.access_token });
      const joinUninvited = await server.api.post(`/v3/join/${enc(roomId)}`, {}, token(bob));
      assert.equal(joinUninvited.status, 403);
      assert.equal((await server.api.post(`/v3/rooms/${enc(roomId)}/invite`, { user_id: bob.user_id }, token(alice))).status, 200);
      const joined = await server.api.post<{ room_id: string }>(`/v3/join/${enc(roomId)}`, {}, token(bob));
      assert.equal(joined.status, 200);
      assert.equal(joined.body.room_id, roomId);
      // Joining again with nothing changed adds no event.
      const before = (await timeline(roomId)).length;
      assert.equal((await server.api.post(`/v3/join/${enc(roomId)}`, {}, token(bob))).status, 200);
      assert.equal((await timeline(roomId)).length, before, 'a second join is not a new event');
      assert.equal((await server.api.post(`/v3/join/${enc(roomId)}`, { reason: 'back' }, token(bob))).status, 200);
      assert.equal((await timeline(roomId)).length, before + 1, 'a join with a new reason is');
      // Bob (power 0) may not kick; Alice may.
      assert.equal((await server.api.post(`/v3/rooms/${enc(roomId)}/kick`, { user_id: alice.user_id }, token(bob))).status, 403);
      assert.equal((await server.api.post(`/v3/rooms/${enc(roomId)}/kick`, { user_id: bob.user_id, reason: 'bye' }, token(alice))).status, 200);
      let state = await stateOf(roomId);
      assert.equal(state.get(`m.room.member|${bob.user_id}`)?.content.membership, 'leave');
      assert.equal(state.get(`m.room.member|${bob.user_id}`)?.content.reason, 'bye');
      assert.equal((await server.api.post(`/v3/rooms/${enc(roomId)}/ban`, { user_id: bob.user_id }, token(alice))).status, 200);
      await server.api.post(`/v3/rooms/${enc(roomId)}/invite`, { user_id: bob.user_id }, token(alice));
      assert.equal((await server.api.post(`/v3/join/${enc(roomId)}`, {}, token(bob))).status, 403, 'banned users cannot join');
      assert.equal((await server.api.post(`/v3/rooms/${enc(roomId)}/unban`, { user_id: bob.user_id }, token(alice))).status, 200);
      state = await stateOf(roomId);
      assert.equal(state.get(`m.room.member|${bob.user_id}`)?.content.membership, 'leave');
      // Leaving, then forgetting.
      assert.equal((await server.api.post(`/v3/rooms/${enc(roomId)}/forget`, {}, token(alice))).status, 400, 'a joined user cannot forget');
      assert.equal((await server.api.post(`/v3/rooms/${enc(roomId)}/leave`, {}, token(alice))).status, 200);
      assert.equal((await server.api.post(`/v3/rooms/${enc(roomId)}/forget`, {}, token(alice))).status, 200);
    });

    it('sends messages idempotently per device and transaction ID, and only members may send', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      const send = (who: Registered, txn: string, body: Record<string, unknown> = { msgtype: 'm.text', body: 'hi' }) =>
        server.api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/send/m.room.message/${txn}`, body, { token: who.access_token });
      const first = await send(alice, 't1');
      const again = await send(alice, 't1');
      assert.equal(first.status, 200);
      assert.equal(again.body.event_id, first.body.event_id);
      const other = await send(alice, 't2');
      assert.notEqual(other.body.event_id, first.body.event_id);
      assert.equal((await send(carol, 't1')).status, 403, 'not in the room');
      await server.api.post(`/v3/join/${enc(roomId)}`, {}, { token: carol.access_token });
      const carols = await send(carol, 't1');
      assert.equal(carols.status, 200);
      assert.notEqual(carols.body.event_id, first.body.event_id, 'transaction IDs are per device');
    });

    it('refuses floats, huge numbers and oversized events, leaving no trace', async () => {
      const roomId = await createRoom(alice);
      const before = (await timeline(roomId)).length;
      const float = await server.api.put(`/v3/rooms/${enc(roomId)}/send/m.room.message/f1`, { body: 'x', n: 1.5 }, { token: alice.access_token });
      assert.equal(float.status, 400);
      assert.equal(float.body.errcode, 'M_BAD_JSON');
      const big = await server.api.put(`/v3/rooms/${enc(roomId)}/send/m.room.message/f2`, { body: 'x', n: 2 ** 53 }, { token: alice.access_token });
      assert.equal(big.body.errcode, 'M_BAD_JSON');
      const huge = await server.api.put(`/v3/rooms/${enc(roomId)}/send/m.room.message/f3`, { body: 'x'.repeat(70_000) }, { token: alice.access_token });
      assert.equal(huge.status, 413);
      assert.equal(huge.body.errcode, 'M_TOO_LARGE');
      const forbiddenState = await server.api.put(`/v3/rooms/${enc(roomId)}/state/m.room.power_levels`, { users: { [alice.user_id]: '100' } }, { token: alice.access_token });
      assert.equal(forbiddenState.status, 403);
      const unknown = await server.api.put(`/v3/rooms/${enc('!nope:' + server.config.server_name)}/send/m.room.message/f4`, { body: 'x' }, { token: alice.access_token });
      assert.equal(unknown.status, 403);
      assert.equal((await timeline(roomId)).length, before, 'nothing stored');
      // A refused event does not spend its transaction ID.
      const retry = await server.api.put(`/v3/rooms/${enc(roomId)}/send/m.room.message/f1`, { body: 'x' }, { token: alice.access_token });
      assert.equal(retry.status, 200);
    });

    it('sets state (deduplicating the same content), checks canonical aliases, and redacts', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      const put = (body: Record<string, unknown>) => server.api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/state/m.room.topic/`, body, { token: alice.access_token });
      const first = await put({ topic: 'one' });
      assert.equal(first.status, 200);
      assert.equal((await put({ topic: 'one' })).body.event_id, first.body.event_id);
      assert.notEqual((await put({ topic: 'two' })).body.event_id, first.body.event_id);
      const badAlias = await server.api.put(`/v3/rooms/${enc(roomId)}/state/m.room.canonical_alias`, { alias: `#missing:${server.config.server_name}` }, { token: alice.access_token });
      assert.equal(badAlias.status, 400);
      assert.equal(badAlias.body.errcode, 'M_BAD_ALIAS');
      const alias = `#room-${Date.now()}:${server.config.server_name}`;
      assert.equal((await server.api.put(`/v3/directory/room/${enc(alias)}`, { room_id: roomId }, { token: alice.access_token })).status, 200);
      assert.equal((await server.api.put(`/v3/rooms/${enc(roomId)}/state/m.room.canonical_alias`, { alias }, { token: alice.access_token })).status, 200);
      assert.deepEqual((await server.api.get<{ aliases: string[] }>(`/v3/rooms/${enc(roomId)}/aliases`, { token: alice.access_token })).body.aliases, [alias]);

      await server.api.post(`/v3/join/${enc(roomId)}`, {}, { token: bob.access_token });
      const msg = await server.api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/send/m.room.message/r1`, { msgtype: 'm.text', body: 'secret' }, { token: alice.access_token });
      const bobRedacts = await server.api.put(`/v3/rooms/${enc(roomId)}/redact/${enc(msg.body.event_id)}/x1`, {}, { token: bob.access_token });
      assert.equal(bobRedacts.status, 403, 'not his event and no redact power');
      const redaction = await server.api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/redact/${enc(msg.body.event_id)}/x1`, { reason: 'oops' }, { token: alice.access_token });
      assert.equal(redaction.status, 200);
      const row = await server.hs.services.store.events.get(msg.body.event_id);
      assert.equal(row?.redacted_by, redaction.body.event_id);
      const redactionPdu = JSON.parse((await server.hs.services.store.events.get(redaction.body.event_id))!.pdu) as { content: Record<string, unknown> };
      assert.equal(redactionPdu.content.redacts, msg.body.event_id, 'v11 keeps redacts in content');
    });

    it('lets an alias be removed by its creator or a member who may set the canonical alias, and lists aliases to readers only', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await server.api.post(`/v3/join/${enc(roomId)}`, {}, { token: bob.access_token });
      const alias = `#del-${Date.now()}:${server.config.server_name}`;
      const del = (who: Registered) => server.api.delete(`/v3/directory/room/${enc(alias)}`, undefined, { token: who.access_token });
      assert.equal((await server.api.put(`/v3/directory/room/${enc(alias)}`, { room_id: roomId }, { token: bob.access_token })).status, 200);
      assert.equal((await del(carol)).status, 403, 'not in the room');
      // Alice is not its creator but has the power to set m.room.canonical_alias (100 >= 50).
      assert.equal((await del(alice)).status, 200);
      assert.equal((await server.api.get(`/v3/directory/room/${enc(alias)}`)).status, 404);
      assert.equal((await server.api.put(`/v3/directory/room/${enc(alias)}`, { room_id: roomId }, { token: alice.access_token })).status, 200);
      assert.equal((await del(bob)).status, 403, 'power 0, and not its creator');
      assert.equal((await del(alice)).status, 200, 'its creator');

      assert.equal((await server.api.get(`/v3/rooms/${enc(roomId)}/aliases`, { token: carol.access_token })).status, 403, 'shared history: members only');
      await server.api.put(`/v3/rooms/${enc(roomId)}/state/m.room.history_visibility`, { history_visibility: 'world_readable' }, { token: alice.access_token });
      assert.equal((await server.api.get(`/v3/rooms/${enc(roomId)}/aliases`, { token: carol.access_token })).status, 200, 'world_readable: anyone');
    });

    it('takes a deleted alias out of the canonical alias event when the deleting user may change it', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await server.api.post(`/v3/join/${enc(roomId)}`, {}, { token: bob.access_token });
      const main = `#main-${Date.now()}:${server.config.server_name}`;
      const alt = `#alt-${Date.now()}:${server.config.server_name}`;
      const kept = `#kept-${Date.now()}:${server.config.server_name}`;
      for (const [who, alias] of [[alice, main], [bob, alt], [alice, kept]] as const) {
        assert.equal((await server.api.put(`/v3/directory/room/${enc(alias)}`, { room_id: roomId }, { token: who.access_token })).status, 200);
      }
      const canonical = () => stateOf(roomId).then((s) => s.get('m.room.canonical_alias|'));
      const set = await server.api.put(`/v3/rooms/${enc(roomId)}/state/m.room.canonical_alias`, { alias: main, alt_aliases: [alt, kept] }, { token: alice.access_token });
      assert.equal(set.status, 200);
      // Bob created the alt alias, so he may delete it, but his power (0) may not change the event: it stays.
      assert.equal((await server.api.delete(`/v3/directory/room/${enc(alt)}`, undefined, { token: bob.access_token })).status, 200);
      assert.deepEqual((await canonical())?.content, { alias: main, alt_aliases: [alt, kept] });
      assert.equal((await canonical())?.sender, alice.user_id);
      // Alice may: the deleted alias leaves the event, the others stay.
      assert.equal((await server.api.delete(`/v3/directory/room/${enc(main)}`, undefined, { token: alice.access_token })).status, 200);
      assert.deepEqual((await canonical())?.content, { alt_aliases: [alt, kept] });
      const state = await server.api.get<{ alias?: string }>(`/v3/rooms/${enc(roomId)}/state/m.room.canonical_alias`, { token: alice.access_token });
      assert.equal(state.body.alias, undefined);
      // An alias the event does not name changes nothing.
      const events = (await timeline(roomId)).length;
      const other = `#other-${Date.now()}:${server.config.server_name}`;
      await server.api.put(`/v3/directory/room/${enc(other)}`, { room_id: roomId }, { token: alice.access_token });
      assert.equal((await server.api.delete(`/v3/directory/room/${enc(other)}`, undefined, { token: alice.access_token })).status, 200);
      assert.equal((await timeline(roomId)).length, events);
    });

    it('publishes the server key that signed the events', async () => {
      const res = await server.api.get<{ verify_keys: Record<string, { key: string }> }>('/_matrix/key/v2/server');
      assert.equal(res.status, 200);
      assert.ok(Object.keys(res.body.verify_keys).length >= 1);
    });
  });
}

describe('rooms: deactivation', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer('sqlite');
  });
  after(() => server.close());

  it('leaves every joined room and rejects pending invites', async () => {
    const alice = await server.api.register('alice');
    const dave = await server.api.register('dave', 'a strong passphrase 12');
    const joined = (await server.api.post<{ room_id: string }>('/v3/createRoom', { preset: 'public_chat' }, { token: alice.access_token })).body.room_id;
    const invited = (await server.api.post<{ room_id: string }>('/v3/createRoom', { invite: [dave.user_id] }, { token: alice.access_token })).body.room_id;
    await server.api.post(`/v3/join/${enc(joined)}`, {}, { token: dave.access_token });
    const res = await server.api.post('/v3/account/deactivate', { auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: dave.user_id }, password: 'a strong passphrase 12' } }, { token: dave.access_token });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    for (const roomId of [joined, invited]) {
      const member = await server.hs.services.store.rooms.member(roomId, dave.user_id);
      assert.equal(member?.membership, 'leave', roomId);
      assert.equal(member?.sender, dave.user_id);
    }
  });
});

describe('rooms: guests', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer('sqlite', { allow_guest_access: true });
  });
  after(() => server.close());

  it("join only rooms whose m.room.guest_access is can_join, and leave them when that is withdrawn", async () => {
    const alice = await server.api.register('alice');
    const bob = await server.api.register('bob');
    const registerGuest = async () => {
      const res = await server.api.post<Registered>('/v3/register?kind=guest', {});
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    };
    const [guest, otherGuest] = [await registerGuest(), await registerGuest()];
    const roomId = (await server.api.post<{ room_id: string }>('/v3/createRoom', { preset: 'public_chat' }, { token: alice.access_token })).body.room_id;
    const setGuestAccess = async (value: string) => {
      const res = await server.api.put(`/v3/rooms/${enc(roomId)}/state/m.room.guest_access`, { guest_access: value }, { token: alice.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const membership = async (who: Registered) => (await server.hs.services.store.rooms.member(roomId, who.user_id))?.membership;

    // public_chat: guest_access forbidden. Neither way of joining lets a guest in; a real user joins.
    const refused = await server.api.post<{ errcode: string }>(`/v3/join/${enc(roomId)}`, {}, { token: guest.access_token });
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    assert.equal(refused.body.errcode, 'M_GUEST_ACCESS_FORBIDDEN');
    const asState = await server.api.put<{ errcode: string }>(`/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(guest.user_id)}`, { membership: 'join' }, { token: guest.access_token });
    assert.equal(asState.status, 403, JSON.stringify(asState.body));
    assert.equal(asState.body.errcode, 'M_GUEST_ACCESS_FORBIDDEN');
    assert.equal(await membership(guest), undefined);
    assert.equal((await server.api.post(`/v3/join/${enc(roomId)}`, {}, { token: bob.access_token })).status, 200);

    await setGuestAccess('can_join');
    for (const g of [guest, otherGuest]) {
      const res = await server.api.post(`/v3/rooms/${enc(roomId)}/join`, {}, { token: g.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(await membership(g), 'join');
    }

    // Withdrawn: each guest leaves (by their own leave event), the real members stay.
    await setGuestAccess('forbidden');
    for (const g of [guest, otherGuest]) {
      const member = await server.hs.services.store.rooms.member(roomId, g.user_id);
      assert.equal(member?.membership, 'leave', g.user_id);
      assert.equal(member?.sender, g.user_id);
    }
    assert.equal(await membership(bob), 'join');
    assert.equal(await membership(alice), 'join');
    const again = await server.api.post<{ errcode: string }>(`/v3/join/${enc(roomId)}`, {}, { token: guest.access_token });
    assert.equal(again.status, 403, JSON.stringify(again.body));
  });
});
