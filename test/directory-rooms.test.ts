import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN_SECRET, registerWithSecret } from './helpers/admin.js';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';
import type { PublicRoomsChunk } from '../src/services/directory/room-directory.js';

type Session = { user_id: string; access_token: string; device_id: string };
type Chunk = PublicRoomsChunk;
type PublicRooms = { chunk: Chunk[]; next_batch?: string; prev_batch?: string; total_room_count_estimate: number; errcode?: string };

// Both engines: the directory's rows are kept by the room write path and read with engine-specific SQL
// (LIKE with escapes, keyset paging, a partial index).
for (const engine of ENGINES) {
  describe(`room directory: /publicRooms and /directory/list/room (${engine})`, () => {
    let server: TestServer;
    let admin: Session;
    let alice: Session;
    let bob: Session;
    let carol: Session;

    const room = (roomId: string) => `/v3/rooms/${encodeURIComponent(roomId)}`;
    const listPath = (roomId: string) => `/v3/directory/list/room/${encodeURIComponent(roomId)}`;
    const createRoom = async (who: Session, body: Record<string, unknown> = {}) => {
      const res = await server.api.post<{ room_id: string }>('/v3/createRoom', body, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.room_id;
    };
    const setState = async (who: Session, roomId: string, type: string, content: Record<string, unknown>) => {
      const res = await server.api.put(`${room(roomId)}/state/${type}/`, content, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const join = async (who: Session, roomId: string) => {
      const res = await server.api.post(`/v3/join/${encodeURIComponent(roomId)}`, {}, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const leave = async (who: Session, roomId: string) => {
      const res = await server.api.post(`${room(roomId)}/leave`, {}, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const publicRooms = async (who: Session, body: Record<string, unknown> = {}) => {
      const res = await server.api.post<PublicRooms>('/v3/publicRooms', body, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    };
    const listed = async (who: Session, term: string) => (await publicRooms(who, { filter: { generic_search_term: term } })).chunk;
    const visibility = async (roomId: string) => (await server.api.get<{ visibility: string }>(listPath(roomId))).body.visibility;

    before(async () => {
      server = await startTestServer(engine, { registration_shared_secret: ADMIN_SECRET });
      admin = await registerWithSecret(server, 'admin', 'admin password', true);
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
      carol = await server.api.register('carol');
    });
    after(async () => server.close());

    it('lists a room created with visibility public, as the spec chunk, and not a private one', async () => {
      const roomId = await createRoom(alice, { visibility: 'public', preset: 'public_chat', name: 'Gardening', topic: 'Roses and tulips', room_alias_name: 'gardening' });
      await setState(alice, roomId, 'm.room.avatar', { url: 'mxc://test.local/rose' });
      await setState(alice, roomId, 'm.room.history_visibility', { history_visibility: 'world_readable' });
      await setState(alice, roomId, 'm.room.guest_access', { guest_access: 'can_join' });
      const privateRoom = await createRoom(alice, { preset: 'public_chat', name: 'Gardening secrets' });

      assert.equal(await visibility(roomId), 'public');
      assert.equal(await visibility(privateRoom), 'private');
      const chunk = await listed(bob, 'gardening');
      assert.deepEqual(chunk, [
        {
          room_id: roomId,
          num_joined_members: 1,
          world_readable: true,
          guest_can_join: true,
          name: 'Gardening',
          topic: 'Roses and tulips',
          canonical_alias: '#gardening:test.local',
          avatar_url: 'mxc://test.local/rose',
          join_rule: 'public',
        },
      ]);
      // GET answers the same rooms.
      const viaGet = await server.api.get<PublicRooms>('/v3/publicRooms', { token: bob.access_token });
      assert.equal(viaGet.status, 200);
      assert.ok(viaGet.body.chunk.some((c) => c.room_id === roomId));
      assert.ok(!viaGet.body.chunk.some((c) => c.room_id === privateRoom));
    });

    it('keeps entries current: name, topic, join rule and members as they change', async () => {
      const roomId = await createRoom(alice, { visibility: 'public', preset: 'public_chat', name: 'Chess club' });
      await join(bob, roomId);
      let [entry] = await listed(carol, 'chess');
      assert.equal(entry?.num_joined_members, 2);
      await join(carol, roomId);
      await leave(bob, roomId);
      await join(bob, roomId);
      [entry] = await listed(carol, 'chess');
      assert.equal(entry?.num_joined_members, 3);

      await setState(alice, roomId, 'm.room.name', { name: 'Draughts club' });
      await setState(alice, roomId, 'm.room.topic', { topic: 'Checkers, really' });
      assert.deepEqual(await listed(carol, 'chess'), []);
      [entry] = await listed(carol, 'draughts');
      assert.equal(entry?.topic, 'Checkers, really');
      // A name removed is no name.
      await setState(alice, roomId, 'm.room.name', {});
      [entry] = await listed(carol, 'checkers');
      assert.equal(entry?.room_id, roomId);
      assert.equal(entry?.name, undefined);

      // Invite-only: still published, but not listed (as Synapse); public again: listed again.
      await setState(alice, roomId, 'm.room.join_rules', { join_rule: 'invite' });
      assert.deepEqual(await listed(carol, 'checkers'), []);
      assert.equal(await visibility(roomId), 'public');
      await setState(alice, roomId, 'm.room.join_rules', { join_rule: 'knock' });
      [entry] = await listed(carol, 'checkers');
      assert.equal(entry?.join_rule, 'knock');

      // Everyone gone: an empty room is not listed.
      for (const who of [bob, carol, alice]) await leave(who, roomId);
      assert.deepEqual(await listed(admin, 'checkers'), []);
    });

    it('orders by joined members, then room ID (both descending, as Synapse), and pages both ways with next_batch and prev_batch', async () => {
      const tag = 'pagingtag';
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await createRoom(alice, { visibility: 'public', preset: 'public_chat', topic: `${tag} ${i}` }));
      // Two rooms with more members: those come first, the bigger one before.
      await join(bob, ids[3]!);
      await join(carol, ids[3]!);
      await join(bob, ids[1]!);
      const expected = [ids[3]!, ids[1]!, ...[ids[0]!, ids[2]!, ids[4]!].sort().reverse()];

      const all = await publicRooms(bob, { filter: { generic_search_term: tag } });
      assert.deepEqual(
        all.chunk.map((c) => c.room_id),
        expected,
      );
      assert.deepEqual(
        all.chunk.map((c) => c.num_joined_members),
        [3, 2, 1, 1, 1],
      );
      assert.equal(all.next_batch, undefined);
      assert.equal(all.prev_batch, undefined);

      const filter = { generic_search_term: tag };
      const page1 = await publicRooms(bob, { limit: 2, filter });
      assert.deepEqual(
        page1.chunk.map((c) => c.room_id),
        expected.slice(0, 2),
      );
      assert.ok(page1.next_batch);
      assert.equal(page1.prev_batch, undefined, 'the first page has nothing before it');
      const page2 = await publicRooms(bob, { limit: 2, filter, since: page1.next_batch });
      assert.deepEqual(
        page2.chunk.map((c) => c.room_id),
        expected.slice(2, 4),
      );
      assert.ok(page2.next_batch && page2.prev_batch);
      const page3 = await publicRooms(bob, { limit: 2, filter, since: page2.next_batch });
      assert.deepEqual(
        page3.chunk.map((c) => c.room_id),
        expected.slice(4),
      );
      assert.equal(page3.next_batch, undefined, 'the last page has nothing after it');
      assert.ok(page3.prev_batch);

      // Back from the last page: the same pages again.
      const back2 = await publicRooms(bob, { limit: 2, filter, since: page3.prev_batch });
      assert.deepEqual(back2.chunk, page2.chunk);
      assert.ok(back2.next_batch && back2.prev_batch);
      const back1 = await publicRooms(bob, { limit: 2, filter, since: back2.prev_batch });
      assert.deepEqual(back1.chunk, page1.chunk);
      assert.equal(back1.prev_batch, undefined);
      assert.ok(back1.next_batch);

      // The GET form pages with the same tokens (over every listed room).
      const get1 = await server.api.get<PublicRooms>('/v3/publicRooms?limit=1', { token: bob.access_token });
      const get2 = await server.api.get<PublicRooms>(`/v3/publicRooms?limit=1&since=${encodeURIComponent(get1.body.next_batch!)}`, { token: bob.access_token });
      assert.equal(get2.status, 200);
      assert.notEqual(get2.body.chunk[0]?.room_id, get1.body.chunk[0]?.room_id);
      assert.equal(get1.body.chunk[0]?.room_id, ids[3], 'the biggest room of the server first');
      assert.ok(get1.body.total_room_count_estimate >= 5);
    });

    it('searches name, topic and alias case-insensitively as a substring, wildcards taken literally, and filters by room type', async () => {
      const ete = await createRoom(alice, { visibility: 'public', preset: 'public_chat', name: 'Été à Paris' });
      const percent = await createRoom(alice, { visibility: 'public', preset: 'public_chat', topic: 'Discounts: 100% off' });
      const aliased = await createRoom(alice, { visibility: 'public', preset: 'public_chat', room_alias_name: 'Hidden-Alias' });
      const space = await createRoom(alice, { visibility: 'public', preset: 'public_chat', name: 'Typed space', creation_content: { type: 'm.space' } });
      const plain = await createRoom(alice, { visibility: 'public', preset: 'public_chat', name: 'Typed plain' });

      assert.deepEqual((await listed(bob, 'ÉTÉ À')).map((c) => c.room_id), [ete]);
      assert.deepEqual((await listed(bob, 'été')).map((c) => c.room_id), [ete]);
      assert.deepEqual((await listed(bob, '100%')).map((c) => c.room_id), [percent]);
      assert.deepEqual(await listed(bob, '1_0%'), [], '_ is no wildcard');
      assert.deepEqual((await listed(bob, 'den-ali')).map((c) => c.room_id), [aliased]);

      const typed = async (roomTypes: (string | null)[]) =>
        (await publicRooms(bob, { filter: { generic_search_term: 'typed', room_types: roomTypes } })).chunk.map((c) => c.room_id).sort();
      assert.deepEqual(await typed(['m.space']), [space]);
      assert.deepEqual(await typed([null]), [plain]);
      assert.deepEqual(await typed([null, 'm.space']), [space, plain].sort());
      assert.deepEqual(await typed([]), []);
      const [spaceEntry] = (await publicRooms(bob, { filter: { generic_search_term: 'typed', room_types: ['m.space'] } })).chunk;
      assert.equal(spaceEntry?.room_type, 'm.space');

      // The estimate counts the listed rooms of the asked types, whatever the search term (Synapse's count).
      const spaces = await publicRooms(bob, { filter: { generic_search_term: 'nothing matches this', room_types: ['m.space'] } });
      assert.deepEqual(spaces.chunk, []);
      assert.equal(spaces.total_room_count_estimate, 1);
    });

    it('lets a server admin or a room member with the power to set the canonical alias publish and unpublish, no one else', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat', name: 'Moderated' });
      await join(bob, roomId);
      const put = (who: Session, body: Record<string, unknown>, id = roomId) => server.api.put(listPath(id), body, { token: who.access_token });

      const byMember = await put(bob, { visibility: 'public' });
      assert.equal(byMember.status, 403);
      assert.equal(byMember.body.errcode, 'M_FORBIDDEN');
      const byStranger = await put(carol, { visibility: 'public' });
      assert.equal(byStranger.status, 403);
      assert.equal(await visibility(roomId), 'private');

      assert.equal((await put(alice, { visibility: 'public' })).status, 200);
      assert.equal(await visibility(roomId), 'public');
      assert.equal((await put(alice, { visibility: 'private' })).status, 200);
      assert.equal(await visibility(roomId), 'private');
      // Visibility defaults to public.
      assert.equal((await put(admin, {})).status, 200, 'a server admin, not in the room');
      assert.equal(await visibility(roomId), 'public');
      // A moderator by power level.
      await setState(alice, roomId, 'm.room.power_levels', { users: { [alice.user_id]: 100, [bob.user_id]: 50 } });
      assert.equal((await put(bob, { visibility: 'private' })).status, 200);
      assert.equal(await visibility(roomId), 'private');

      const unknown = await put(alice, { visibility: 'public' }, '!nosuchroom:test.local');
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.errcode, 'M_NOT_FOUND');
      const unknownGet = await server.api.get(listPath('!nosuchroom:test.local'));
      assert.equal(unknownGet.status, 404);
      assert.equal(unknownGet.body.errcode, 'M_NOT_FOUND');
    });

    it('accepts its own server name as `server` and refuses another one, as Synapse does for a server it may not federate with', async () => {
      const own = await server.api.get<PublicRooms>('/v3/publicRooms?server=test.local', { token: bob.access_token });
      assert.equal(own.status, 200);
      const ownPost = await server.api.post<PublicRooms>('/v3/publicRooms?server=test.local', {}, { token: bob.access_token });
      assert.equal(ownPost.status, 200);
      assert.deepEqual(ownPost.body.chunk, own.body.chunk);
      for (const res of [
        await server.api.get('/v3/publicRooms?server=matrix.org', { token: bob.access_token }),
        await server.api.post('/v3/publicRooms?server=matrix.org', {}, { token: bob.access_token }),
      ]) {
        assert.equal(res.status, 403);
        assert.equal(res.body.errcode, 'M_FORBIDDEN');
      }
      const invalid = await server.api.get('/v3/publicRooms?server=not%20a%20server', { token: bob.access_token });
      assert.equal(invalid.status, 400);
      assert.equal(invalid.body.errcode, 'M_INVALID_PARAM');
    });

    it('answers bad input with the spec errors, never a 500', async () => {
      const token = { token: bob.access_token };
      const cases: [string, () => Promise<{ status: number; body: Record<string, unknown> }>, number, string][] = [
        ['negative limit', () => server.api.get('/v3/publicRooms?limit=-1', token), 400, 'M_INVALID_PARAM'],
        ['word limit', () => server.api.get('/v3/publicRooms?limit=ten', token), 400, 'M_INVALID_PARAM'],
        ['garbage since', () => server.api.get('/v3/publicRooms?since=garbage', token), 400, 'M_INVALID_PARAM'],
        ['base64 non-token since', () => server.api.get(`/v3/publicRooms?since=${Buffer.from('[1,2]').toString('base64url')}`, token), 400, 'M_INVALID_PARAM'],
        ['string limit', () => server.api.post('/v3/publicRooms', { limit: '5' }, token), 400, 'M_BAD_JSON'],
        ['negative body limit', () => server.api.post('/v3/publicRooms', { limit: -5 }, token), 400, 'M_INVALID_PARAM'],
        ['filter not an object', () => server.api.post('/v3/publicRooms', { filter: 'x' }, token), 400, 'M_BAD_JSON'],
        ['search term not a string', () => server.api.post('/v3/publicRooms', { filter: { generic_search_term: 5 } }, token), 400, 'M_BAD_JSON'],
        ['room_types not a list', () => server.api.post('/v3/publicRooms', { filter: { room_types: 'm.space' } }, token), 400, 'M_BAD_JSON'],
        ['room_types of numbers', () => server.api.post('/v3/publicRooms', { filter: { room_types: [1] } }, token), 400, 'M_BAD_JSON'],
        ['body not an object', () => server.api.post('/v3/publicRooms', [1], token), 400, 'M_BAD_JSON'],
        ['unknown visibility', () => server.api.put(listPath('!x:test.local'), { visibility: 'secret' }, token), 400, 'M_INVALID_PARAM'],
        ['not a room ID', () => server.api.put('/v3/directory/list/room/nonsense', { visibility: 'public' }, token), 400, 'M_INVALID_PARAM'],
        ['not a room ID (GET)', () => server.api.get('/v3/directory/list/room/nonsense'), 400, 'M_INVALID_PARAM'],
        ['no token for GET', () => server.api.get('/v3/publicRooms'), 401, 'M_MISSING_TOKEN'],
        ['no token for POST', () => server.api.post('/v3/publicRooms', {}), 401, 'M_MISSING_TOKEN'],
        ['no token for PUT', () => server.api.put(listPath('!x:test.local'), { visibility: 'public' }), 401, 'M_MISSING_TOKEN'],
      ];
      for (const [what, pending, status, errcode] of cases) {
        const res = await pending();
        assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.errcode, errcode, what);
      }
      // A third-party network list is empty here (no application service publishes one).
      const network = await publicRooms(bob, { third_party_instance_id: 'irc-libera' });
      assert.deepEqual(network.chunk, []);
    });
  });

  describe(`room directory configuration: publication rules, search switched off, lists without auth (${engine})`, () => {
    let server: TestServer;
    let alice: Session;
    let bob: Session;

    before(async () => {
      server = await startTestServer(engine, {
        // Alice may publish anything; anyone may publish a room with an #official-* alias; everything else is refused.
        room_list_publication_rules: [{ user_id: '@alice:*', action: 'allow' }, { alias: '#official-*', action: 'allow' }, { action: 'deny' }],
        allow_public_rooms_without_auth: true,
      });
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
    });
    after(async () => server.close());

    it('creates a public room the rules refuse but does not publish it; PUT answers 403 "Not allowed to publish room"', async () => {
      const refused = await server.api.post<{ room_id: string }>('/v3/createRoom', { visibility: 'public', name: 'Bob public' }, { token: bob.access_token });
      assert.equal(refused.status, 200, 'the room is still created (Synapse since 1.101)');
      const roomId = refused.body.room_id;
      assert.equal((await server.api.get<{ visibility: string }>(`/v3/directory/list/room/${encodeURIComponent(roomId)}`)).body.visibility, 'private');
      const put = await server.api.put(`/v3/directory/list/room/${encodeURIComponent(roomId)}`, { visibility: 'public' }, { token: bob.access_token });
      assert.equal(put.status, 403);
      assert.equal(put.body.errcode, 'M_FORBIDDEN');
      // Unpublishing is never refused by the rules.
      assert.equal((await server.api.put(`/v3/directory/list/room/${encodeURIComponent(roomId)}`, { visibility: 'private' }, { token: bob.access_token })).status, 200);

      const byAlias = await server.api.post<{ room_id: string }>('/v3/createRoom', { visibility: 'public', room_alias_name: 'official-news' }, { token: bob.access_token });
      assert.equal((await server.api.get<{ visibility: string }>(`/v3/directory/list/room/${encodeURIComponent(byAlias.body.room_id)}`)).body.visibility, 'public');
      const byAlice = await server.api.post<{ room_id: string }>('/v3/createRoom', { visibility: 'public' }, { token: alice.access_token });
      assert.equal((await server.api.get<{ visibility: string }>(`/v3/directory/list/room/${encodeURIComponent(byAlice.body.room_id)}`)).body.visibility, 'public');

      // An alias added later counts when publishing by PUT.
      const later = await server.api.put(`/v3/directory/room/${encodeURIComponent('#official-later:test.local')}`, { room_id: roomId }, { token: bob.access_token });
      assert.equal(later.status, 200, JSON.stringify(later.body));
      assert.equal((await server.api.put(`/v3/directory/list/room/${encodeURIComponent(roomId)}`, { visibility: 'public' }, { token: bob.access_token })).status, 200);
    });

    it('lists rooms without an access token when allow_public_rooms_without_auth is set', async () => {
      const res = await server.api.get<PublicRooms>('/v3/publicRooms');
      assert.equal(res.status, 200);
      assert.ok(res.body.chunk.length >= 2);
      const post = await server.api.post<PublicRooms>('/v3/publicRooms', { limit: 1 });
      assert.equal(post.status, 200);
      assert.equal(post.body.chunk.length, 1);
    });

    it('refuses all publishing with an empty rule list, and lists nothing with enable_room_list_search off', async () => {
      const closed = await startTestServer(engine, { room_list_publication_rules: [], enable_room_list_search: true });
      const off = await startTestServer(engine, { enable_room_list_search: false });
      try {
        const carol = await closed.api.register('carol');
        const roomId = (await closed.api.post<{ room_id: string }>('/v3/createRoom', { visibility: 'public' }, { token: carol.access_token })).body.room_id;
        assert.equal((await closed.api.get<{ visibility: string }>(`/v3/directory/list/room/${encodeURIComponent(roomId)}`)).body.visibility, 'private');

        const dave = await off.api.register('dave');
        const offRoom = (await off.api.post<{ room_id: string }>('/v3/createRoom', { visibility: 'public', preset: 'public_chat' }, { token: dave.access_token })).body.room_id;
        const list = await off.api.get<PublicRooms>('/v3/publicRooms', { token: dave.access_token });
        assert.deepEqual(list.body, { chunk: [], total_room_count_estimate: 0 });
        const put = await off.api.put(`/v3/directory/list/room/${encodeURIComponent(offRoom)}`, { visibility: 'public' }, { token: dave.access_token });
        assert.equal(put.status, 403);
      } finally {
        await closed.close();
        await off.close();
      }
    });
  });
}
