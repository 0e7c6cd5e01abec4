import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

type Session = { user_id: string; access_token: string; device_id: string };
type Result = { user_id: string; display_name?: string; avatar_url?: string };
type Search = { results: Result[]; limited: boolean; errcode?: string };

// Both engines: the words index is searched by prefix ranges, which depend on each engine's collation.
for (const engine of ENGINES) {
  describe(`user directory: POST /user_directory/search (${engine})`, () => {
    let server: TestServer;
    let alice: Session;
    let bob: Session;
    let carol: Session;
    let dave: Session;
    let emile: Session;

    const room = (roomId: string) => `/v3/rooms/${encodeURIComponent(roomId)}`;
    const createRoom = async (who: Session, body: Record<string, unknown> = {}) => {
      const res = await server.api.post<{ room_id: string }>('/v3/createRoom', body, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.room_id;
    };
    const join = async (who: Session, roomId: string) => {
      const res = await server.api.post(`/v3/join/${encodeURIComponent(roomId)}`, {}, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const invite = async (who: Session, roomId: string, target: Session) => {
      const res = await server.api.post(`${room(roomId)}/invite`, { user_id: target.user_id }, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const leave = async (who: Session, roomId: string) => {
      const res = await server.api.post(`${room(roomId)}/leave`, {}, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const setState = async (who: Session, roomId: string, type: string, content: Record<string, unknown>) => {
      const res = await server.api.put(`${room(roomId)}/state/${type}/`, content, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const setName = async (who: Session, name: string) => {
      const res = await server.api.put(`/v3/profile/${encodeURIComponent(who.user_id)}/displayname`, { displayname: name }, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const search = async (who: Session, term: string, limit?: number) => {
      const res = await server.api.post<Search>('/v3/user_directory/search', { search_term: term, ...(limit === undefined ? {} : { limit }) }, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    };
    const found = async (who: Session, term: string) => (await search(who, term)).results.map((r) => r.user_id);

    before(async () => {
      server = await startTestServer(engine);
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
      carol = await server.api.register('carol');
      dave = await server.api.register('dave.smith');
      emile = await server.api.register('emile');
      await setName(bob, 'Bobby Tables');
      await setName(emile, 'Émile Zola');
    });
    after(async () => server.close());

    it('finds only users who share a joined room with the searcher, by localpart and display name word prefixes', async () => {
      assert.deepEqual(await found(alice, 'bob'), [], 'no shared room yet');
      const roomId = await createRoom(alice, { preset: 'private_chat' });
      await invite(alice, roomId, bob);
      assert.deepEqual(await found(alice, 'bob'), [], 'an invite is not a shared room');
      await join(bob, roomId);

      assert.deepEqual((await search(alice, 'bob')).results, [{ user_id: bob.user_id, display_name: 'Bobby Tables' }]);
      assert.deepEqual(await found(alice, 'TAB'), [bob.user_id], 'a later word of the display name, case-insensitively');
      assert.deepEqual(await found(alice, 'bobby ta'), [bob.user_id], 'every word of the term must begin a word');
      assert.deepEqual(await found(alice, 'bobby zz'), []);
      assert.deepEqual(await found(alice, 'obby'), [], 'words match by prefix only');
      assert.deepEqual(await found(alice, bob.user_id), [bob.user_id], 'a typed user ID finds its user');
      assert.deepEqual(await found(bob, 'ali'), [alice.user_id], 'the other way round too');
      assert.deepEqual(await found(alice, 'alice'), [], 'not the searcher (no public room)');

      // Current data: a new display name, and leaving the room.
      await setName(bob, 'Robert');
      assert.deepEqual(await found(alice, 'tables'), []);
      assert.deepEqual(await found(alice, 'rob'), [bob.user_id]);
      assert.deepEqual(await found(alice, 'bob'), [bob.user_id], 'the localpart still finds him');
      await leave(bob, roomId);
      assert.deepEqual(await found(alice, 'rob'), []);
    });

    it('finds users joined to publicly joinable or world-readable rooms, while the room is so', async () => {
      const roomId = await createRoom(dave, { preset: 'public_chat' });
      assert.deepEqual(await found(carol, 'smith'), [dave.user_id], 'by a word of the localpart dave.smith');
      assert.deepEqual(await found(dave, 'dave'), [dave.user_id], 'as in Synapse, one in a public room finds themselves');
      await setState(dave, roomId, 'm.room.join_rules', { join_rule: 'invite' });
      assert.deepEqual(await found(carol, 'smith'), []);
      await setState(dave, roomId, 'm.room.history_visibility', { history_visibility: 'world_readable' });
      assert.deepEqual(await found(carol, 'smith'), [dave.user_id]);
      await setState(dave, roomId, 'm.room.history_visibility', { history_visibility: 'shared' });
      assert.deepEqual(await found(carol, 'smith'), []);
    });

    it('matches non-ASCII words case-insensitively and answers display names and avatars', async () => {
      const roomId = await createRoom(emile, { preset: 'public_chat' });
      const avatar = await server.api.put(`/v3/profile/${encodeURIComponent(emile.user_id)}/avatar_url`, { avatar_url: 'mxc://test.local/emile' }, { token: emile.access_token });
      assert.equal(avatar.status, 200);
      assert.deepEqual((await search(carol, 'ÉMI')).results, [{ user_id: emile.user_id, display_name: 'Émile Zola', avatar_url: 'mxc://test.local/emile' }]);
      assert.deepEqual(await found(carol, 'zol'), [emile.user_id]);
      assert.deepEqual(await found(carol, 'emile'), [emile.user_id], 'the localpart');
      await leave(emile, roomId);
      assert.deepEqual(await found(carol, 'zol'), []);
    });

    it('applies limit (at most 50) and says when results were cut', async () => {
      const roomId = await createRoom(carol, { preset: 'public_chat' });
      const names = ['Zeta One', 'Zeta Two', 'Zeta Three'];
      for (const [i, name] of names.entries()) {
        const user = await server.api.register(`zeta${i}`);
        await setName(user, name);
        await join(user, roomId);
      }
      const all = await search(alice, 'zeta');
      assert.equal(all.limited, false);
      assert.deepEqual(
        all.results.map((r) => r.display_name),
        ['Zeta One', 'Zeta Three', 'Zeta Two'],
        'by display name',
      );
      const two = await search(alice, 'zeta', 2);
      assert.equal(two.limited, true);
      assert.equal(two.results.length, 2);
      const none = await search(alice, 'zeta', 0);
      assert.deepEqual(none, { results: [], limited: true });
      assert.equal((await search(alice, 'zeta', 1000)).results.length, 3);
      assert.deepEqual(await search(alice, '  !!  '), { results: [], limited: false }, 'a term without words finds no one');
    });

    it('answers bad input with the spec errors, never a 500', async () => {
      const token = { token: alice.access_token };
      const cases: [string, () => Promise<{ status: number; body: Record<string, unknown> }>, number, string][] = [
        ['no search_term', () => server.api.post('/v3/user_directory/search', {}, token), 400, 'M_MISSING_PARAM'],
        ['search_term a number', () => server.api.post('/v3/user_directory/search', { search_term: 5 }, token), 400, 'M_BAD_JSON'],
        ['limit a string', () => server.api.post('/v3/user_directory/search', { search_term: 'a', limit: 'ten' }, token), 400, 'M_BAD_JSON'],
        ['limit a fraction', () => server.api.post('/v3/user_directory/search', { search_term: 'a', limit: 1.5 }, token), 400, 'M_BAD_JSON'],
        ['body a list', () => server.api.post('/v3/user_directory/search', ['a'], token), 400, 'M_BAD_JSON'],
        ['no token', () => server.api.post('/v3/user_directory/search', { search_term: 'a' }), 401, 'M_MISSING_TOKEN'],
      ];
      for (const [what, pending, status, errcode] of cases) {
        const res = await pending();
        assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.errcode, errcode, what);
      }
    });
  });

  describe(`user directory configuration: search_all_users, enabled (${engine})`, () => {
    let server: TestServer;

    before(async () => {
      server = await startTestServer(engine, { user_directory: { search_all_users: true } });
    });
    after(async () => server.close());

    it('finds every active local user but the searcher with search_all_users, never a deactivated one', async () => {
      const alice = await server.api.register('alice');
      const loner = await server.api.register('loner');
      const gone = await server.api.register('lonely');
      const found = async (term: string) =>
        (await server.api.post<Search>('/v3/user_directory/search', { search_term: term }, { token: alice.access_token })).body.results.map((r) => r.user_id);
      assert.deepEqual(await found('lone'), [gone.user_id, loner.user_id].sort());
      assert.deepEqual(await found('alice'), [], 'not the searcher');

      const deactivate = async () => {
        const first = await server.api.post('/v3/account/deactivate', {}, { token: gone.access_token });
        return server.api.post('/v3/account/deactivate', { auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'lonely' }, password: 'correct horse battery', session: first.body.session } }, { token: gone.access_token });
      };
      assert.equal((await deactivate()).status, 200);
      assert.deepEqual(await found('lone'), [loner.user_id]);
    });

    it('answers an empty list when the user directory is disabled', async () => {
      const off = await startTestServer(engine, { user_directory: { enabled: false, search_all_users: true } });
      try {
        const a = await off.api.register('a1');
        await off.api.register('findme');
        const res = await off.api.post<Search>('/v3/user_directory/search', { search_term: 'findme' }, { token: a.access_token });
        assert.deepEqual(res.body, { results: [], limited: false });
      } finally {
        await off.close();
      }
    });
  });
}
