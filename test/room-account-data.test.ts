import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { enc, roomActions, type SyncBody, type User } from './helpers/room-actions.js';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

const roomAccountData = (sync: SyncBody, roomId: string) => sync.rooms.join[roomId]?.account_data.events ?? [];

// Both engines: tag changes are read-modify-writes that concurrent requests must not lose, which
// rests on PostgreSQL's stream lock there.
for (const engine of ENGINES) {
  describe(`room account data and tags (${engine})`, () => {
    let server: TestServer;
    let alice: User;
    let bob: User;
    const { sync, createRoom } = roomActions(() => server);
    const dataPath = (who: User, roomId: string, type: string) => `/v3/user/${enc(who.user_id)}/rooms/${enc(roomId)}/account_data/${enc(type)}`;
    const tagsPath = (who: User, roomId: string) => `/v3/user/${enc(who.user_id)}/rooms/${enc(roomId)}/tags`;
    const tags = async (who: User, roomId: string) => {
      const res = await server.api.get<{ tags: Record<string, { order?: number }> }>(tagsPath(who, roomId), { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.tags;
    };
    const putTag = (who: User, roomId: string, tag: string, body: unknown, as = who) => server.api.put(`${tagsPath(who, roomId)}/${enc(tag)}`, body, { token: as.access_token });
    const deleteTag = (who: User, roomId: string, tag: string, as = who) => server.api.delete(`${tagsPath(who, roomId)}/${enc(tag)}`, undefined, { token: as.access_token });

    before(async () => {
      server = await startTestServer(engine);
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
    });
    after(() => server.close());

    it('stores room account data, serves it back and syncs it under the room, initially and incrementally', async () => {
      const roomId = await createRoom(alice);
      const start = await sync(alice);
      assert.deepEqual(roomAccountData(start, roomId), []);
      assert.equal((await server.api.put(dataPath(alice, roomId, 'org.example.notes'), { text: 'hi' }, { token: alice.access_token })).status, 200);
      const got = await server.api.get(dataPath(alice, roomId, 'org.example.notes'), { token: alice.access_token });
      assert.deepEqual(got.body, { text: 'hi' });
      assert.deepEqual(roomAccountData(await sync(alice, { since: start.next_batch }), roomId), [{ type: 'org.example.notes', content: { text: 'hi' } }]);
      assert.deepEqual(roomAccountData(await sync(alice), roomId), [{ type: 'org.example.notes', content: { text: 'hi' } }]);
      const global = await sync(alice);
      assert.ok(!global.account_data.events.some((e) => e.type === 'org.example.notes'), 'room account data is not global');

      assert.equal((await server.api.get(dataPath(alice, roomId, 'org.example.none'), { token: alice.access_token })).body.errcode, 'M_NOT_FOUND');
      const other = await server.api.put(dataPath(alice, roomId, 'org.example.notes'), { text: 'mine' }, { token: bob.access_token });
      assert.equal(other.status, 403);
      assert.equal(other.body.errcode, 'M_FORBIDDEN');
      const badRoom = await server.api.put(`/v3/user/${enc(alice.user_id)}/rooms/notaroom/account_data/x`, {}, { token: alice.access_token });
      assert.equal(badRoom.status, 400);
      assert.equal(badRoom.body.errcode, 'M_INVALID_PARAM');
    });

    it('adds, lists and removes tags, synced as m.tag room account data', async () => {
      const roomId = await createRoom(alice);
      assert.deepEqual(await tags(alice, roomId), {}, 'no tags yet');
      const start = await sync(alice);
      assert.equal((await putTag(alice, roomId, 'u.work', { order: 0.5 })).status, 200);
      assert.equal((await putTag(alice, roomId, 'm.favourite', {})).status, 200);
      assert.deepEqual(await tags(alice, roomId), { 'u.work': { order: 0.5 }, 'm.favourite': {} });
      const later = await sync(alice, { since: start.next_batch });
      assert.deepEqual(roomAccountData(later, roomId), [{ type: 'm.tag', content: { tags: { 'u.work': { order: 0.5 }, 'm.favourite': {} } } }]);
      // A tag set again replaces its content.
      assert.equal((await putTag(alice, roomId, 'u.work', { order: 0.25 })).status, 200);
      assert.equal((await deleteTag(alice, roomId, 'm.favourite')).status, 200);
      assert.deepEqual(await tags(alice, roomId), { 'u.work': { order: 0.25 } });
      assert.deepEqual(roomAccountData(await sync(alice, { since: later.next_batch }), roomId), [{ type: 'm.tag', content: { tags: { 'u.work': { order: 0.25 } } } }]);
      assert.deepEqual(roomAccountData(await sync(alice), roomId), [{ type: 'm.tag', content: { tags: { 'u.work': { order: 0.25 } } } }]);
      // Removing a tag that is not there changes nothing, and is no error.
      assert.equal((await deleteTag(alice, roomId, 'u.absent')).status, 200);
      assert.deepEqual(await tags(alice, roomId), { 'u.work': { order: 0.25 } });
      // The tags are the user's own.
      assert.deepEqual(await tags(bob, roomId), {});
    });

    it('loses no tag when many are added at once', async () => {
      const roomId = await createRoom(alice);
      const names = Array.from({ length: 12 }, (_, i) => `u.t${i}`);
      const results = await Promise.all(names.map((name, i) => putTag(alice, roomId, name, { order: i / 20 })));
      assert.deepEqual(results.map((r) => r.status), names.map(() => 200));
      assert.deepEqual(Object.keys(await tags(alice, roomId)).sort(), [...names].sort());
    });

    it('answers bad tag requests with the right Matrix error', async () => {
      const roomId = await createRoom(alice);
      const cases: [string, () => ReturnType<typeof putTag>, number, string][] = [
        ["another user's tags", () => putTag(alice, roomId, 'u.x', {}, bob), 403, 'M_FORBIDDEN'],
        ["reading another user's tags", () => server.api.get(tagsPath(alice, roomId), { token: bob.access_token }), 403, 'M_FORBIDDEN'],
        ["removing another user's tag", () => deleteTag(alice, roomId, 'u.x', bob), 403, 'M_FORBIDDEN'],
        ['order not a number', () => putTag(alice, roomId, 'u.x', { order: 'first' }), 400, 'M_BAD_JSON'],
        ['a body that is no object', () => putTag(alice, roomId, 'u.x', [0.5]), 400, 'M_BAD_JSON'],
        ['not a room ID', () => server.api.put(`/v3/user/${enc(alice.user_id)}/rooms/x/tags/u.x`, {}, { token: alice.access_token }), 400, 'M_INVALID_PARAM'],
      ];
      for (const [what, call, status, errcode] of cases) {
        const res = await call();
        assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.errcode, errcode, what);
      }
      assert.deepEqual(await tags(alice, roomId), {}, 'nothing was stored');
    });
  });
}
