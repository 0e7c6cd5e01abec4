import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ENGINES, ManualClock, startTestServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

const session = (index: number, verified = false) => ({
  first_message_index: index,
  forwarded_count: 0,
  is_verified: verified,
  session_data: { ciphertext: `c${index}`, ephemeral: 'e', mac: 'm' },
});

for (const engine of ENGINES) {
  // Both engines: key backup versions and etags are computed in SQL.
  describe(`key backup, presence, TURN and third-party lookups (${engine})`, () => {
    let server: TestServer;
    let token: string;
    let userId: string;
    const clock = new ManualClock(1_800_000_000_000);
    before(async () => {
      server = await startTestServer(engine, { turn_uris: ['turn:turn.test.local:3478?transport=udp'], turn_shared_secret: 'turn-secret', turn_user_lifetime: '1h' }, { clock });
      const alice = await server.api.register('alice');
      token = alice.access_token;
      userId = alice.user_id;
    });
    after(async () => server.close());

    it('creates, reads, updates and deletes key backups and their keys', async () => {
      const none = await server.api.get('/v3/room_keys/version', { token });
      assert.equal(none.status, 404);
      assert.equal(none.body.errcode, 'M_NOT_FOUND');
      assert.equal((await server.api.get('/v3/room_keys/keys?version=1', { token })).body.errcode, 'M_NOT_FOUND');
      assert.equal((await server.api.put('/v3/room_keys/keys?version=1', { rooms: {} }, { token })).body.errcode, 'M_NOT_FOUND');

      const algorithm = 'm.megolm_backup.v1.curve25519-aes-sha2';
      const badAlgorithm = await server.api.post('/v3/room_keys/version', { algorithm: 'm.other', auth_data: {} }, { token });
      assert.equal(badAlgorithm.status, 400);
      const created = await server.api.post<{ version: string }>('/v3/room_keys/version', { algorithm, auth_data: { public_key: 'pk1' } }, { token });
      assert.equal(created.status, 200);
      const v1 = created.body.version;
      const info = await server.api.get('/v3/room_keys/version', { token });
      assert.deepEqual(info.body, { algorithm, auth_data: { public_key: 'pk1' }, count: 0, etag: '0', version: v1 });

      const room = encodeURIComponent('!r:test.local');
      const put = await server.api.put(`/v3/room_keys/keys/${room}/s1?version=${v1}`, session(5), { token });
      assert.deepEqual(put.body, { etag: '1', count: 1 });
      // A worse copy (higher first index) does not replace the stored one; a verified one does.
      await server.api.put(`/v3/room_keys/keys/${room}/s1?version=${v1}`, session(9), { token });
      assert.equal((await server.api.get<{ first_message_index: number }>(`/v3/room_keys/keys/${room}/s1?version=${v1}`, { token })).body.first_message_index, 5);
      await server.api.put(`/v3/room_keys/keys/${room}?version=${v1}`, { sessions: { s1: session(7, true), s2: session(0) } }, { token });
      const roomKeys = await server.api.get<{ sessions: Record<string, { first_message_index: number; is_verified: boolean }> }>(`/v3/room_keys/keys/${room}?version=${v1}`, { token });
      assert.equal(roomKeys.body.sessions.s1!.is_verified, true);
      assert.equal(Object.keys(roomKeys.body.sessions).length, 2);
      const all = await server.api.put<{ count: number }>(`/v3/room_keys/keys?version=${v1}`, { rooms: { '!other:test.local': { sessions: { s3: session(1) } } } }, { token });
      assert.equal(all.body.count, 3);
      const everything = await server.api.get<{ rooms: Record<string, unknown> }>(`/v3/room_keys/keys?version=${v1}`, { token });
      assert.equal(Object.keys(everything.body.rooms).length, 2);
      const invalid = await server.api.put(`/v3/room_keys/keys/${room}/s9?version=${v1}`, { first_message_index: 'x' }, { token });
      assert.equal(invalid.status, 400);
      assert.equal((await server.api.get(`/v3/room_keys/keys/${room}/nosuch?version=${v1}`, { token })).status, 404);

      assert.equal((await server.api.put(`/v3/room_keys/version/${v1}`, { algorithm, auth_data: { public_key: 'pk1', signatures: {} } }, { token })).status, 200);
      const mismatch = await server.api.put(`/v3/room_keys/version/${v1}`, { algorithm, auth_data: {}, version: '99' }, { token });
      assert.equal(mismatch.body.errcode, 'M_INVALID_PARAM');

      const v2 = (await server.api.post<{ version: string }>('/v3/room_keys/version', { algorithm, auth_data: { public_key: 'pk2' } }, { token })).body.version;
      const wrong = await server.api.put(`/v3/room_keys/keys/${room}/s1?version=${v1}`, session(1), { token });
      assert.equal(wrong.status, 403);
      assert.equal(wrong.body.errcode, 'M_WRONG_ROOM_KEYS_VERSION');
      assert.equal(wrong.body.current_version, v2);

      const deleted = await server.api.delete<{ count: number }>(`/v3/room_keys/keys/${room}?version=${v1}`, undefined, { token });
      assert.equal(deleted.body.count, 1);
      assert.equal((await server.api.delete(`/v3/room_keys/version/${v2}`, undefined, { token })).status, 200);
      assert.equal((await server.api.get('/v3/room_keys/version', { token })).body.version, v1);
      assert.equal((await server.api.delete(`/v3/room_keys/version/${v2}`, undefined, { token })).status, 404);
      assert.equal((await server.api.get('/v3/room_keys/version/abc', { token })).status, 404);
    });

    it('gives each of several backups created at once its own version', async () => {
      const bob = await server.api.register('bob-backups');
      const algorithm = 'm.megolm_backup.v1.curve25519-aes-sha2';
      const created = await Promise.all(
        Array.from({ length: 10 }, (_, i) => server.api.post<{ version: string }>('/v3/room_keys/version', { algorithm, auth_data: { public_key: `pk${i}` } }, { token: bob.access_token })),
      );
      assert.deepEqual(created.map((r) => r.status), Array(10).fill(200));
      assert.deepEqual(created.map((r) => Number(r.body.version)).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.equal((await server.api.get<{ version: string }>('/v3/room_keys/version', { token: bob.access_token })).body.version, '10');
    });

    it('sets and reads the own presence, and refuses another user', async () => {
      const path = `/v3/presence/${encodeURIComponent(userId)}/status`;
      assert.equal((await server.api.put(path, { presence: 'unavailable', status_msg: 'lunch' }, { token })).status, 200);
      clock.advance(5000);
      const got = await server.api.get(path, { token });
      assert.deepEqual(got.body, { presence: 'unavailable', last_active_ago: 5000, currently_active: false, status_msg: 'lunch' });
      assert.equal((await server.api.put(path, { presence: 'busy' }, { token })).body.errcode, 'M_INVALID_PARAM');
      assert.equal((await server.api.put(path, {}, { token })).body.errcode, 'M_MISSING_PARAM');
      const bob = await server.api.register('bob');
      assert.equal((await server.api.put(path, { presence: 'online' }, { token: bob.access_token })).status, 403);
      assert.equal((await server.api.get(path, { token: bob.access_token })).status, 403);
      // Syncing marks the user online.
      await server.api.get('/v3/sync', { token });
      assert.equal((await server.api.get(path, { token })).body.presence, 'online');
    });

    it("delivers the user's own presence in /sync, initially and when it changes, waking a waiting sync", async () => {
      type PresenceSync = { next_batch: string; presence: { events: { type: string; sender: string; content: Record<string, unknown> }[] } };
      const carol = await server.api.register('carol-presence');
      const path = `/v3/presence/${encodeURIComponent(carol.user_id)}/status`;
      // set_presence=offline: the syncs themselves do not mark carol online.
      const sync = (query = '') => server.api.get<PresenceSync>(`/v3/sync?set_presence=offline${query}`, { token: carol.access_token });
      assert.deepEqual((await sync()).body.presence.events, []);

      assert.equal((await server.api.put(path, { presence: 'unavailable', status_msg: 'lunch' }, { token: carol.access_token })).status, 200);
      clock.advance(2000);
      const initial = await sync();
      assert.deepEqual(initial.body.presence.events, [
        { type: 'm.presence', sender: carol.user_id, content: { presence: 'unavailable', last_active_ago: 2000, currently_active: false, status_msg: 'lunch' } },
      ]);
      const quiet = await sync(`&since=${initial.body.next_batch}`);
      assert.deepEqual(quiet.body.presence.events, []);

      const waiting = sync(`&since=${quiet.body.next_batch}&timeout=20000`);
      await until(() => server.hs.services.notifier.waiting === 1, 'the sync to wait');
      const t = Date.now();
      assert.equal((await server.api.put(path, { presence: 'online', status_msg: 'back' }, { token: carol.access_token })).status, 200);
      const woke = await waiting;
      assert.ok(Date.now() - t < 2000, 'the change wakes the waiting sync');
      assert.deepEqual(woke.body.presence.events, [
        { type: 'm.presence', sender: carol.user_id, content: { presence: 'online', last_active_ago: 0, currently_active: true, status_msg: 'back' } },
      ]);

      // The same state and message again is no change.
      await server.api.put(path, { presence: 'online', status_msg: 'back' }, { token: carol.access_token });
      assert.deepEqual((await sync(`&since=${woke.body.next_batch}`)).body.presence.events, []);

      // The filter's presence section applies.
      const filtered = (filter: unknown) => sync(`&filter=${encodeURIComponent(JSON.stringify(filter))}`);
      assert.deepEqual((await filtered({ presence: { not_types: ['m.presence'] } })).body.presence.events, []);
      assert.deepEqual((await filtered({ presence: { senders: ['@someone:else'] } })).body.presence.events, []);
      assert.equal((await filtered({ presence: { types: ['m.presence'], limit: 1 } })).body.presence.events.length, 1);

      // A sync that marks an idle user online reports the change in its own answer.
      await server.api.put(path, { presence: 'unavailable' }, { token: carol.access_token });
      const before = await sync();
      const marked = await server.api.get<PresenceSync>(`/v3/sync?since=${before.body.next_batch}`, { token: carol.access_token });
      assert.equal(marked.body.presence.events[0]?.content.presence, 'online');
    });

    it("shares presence with room-mates: in sync (on joining, and when it changes, waking them) and through GET", async () => {
      type PresenceSync = { next_batch: string; presence: { events: { type: string; sender: string; content: Record<string, unknown> }[] } };
      const dan = await server.api.register('dan-presence');
      const erin = await server.api.register('erin-presence');
      const status = (who: { user_id: string }) => `/v3/presence/${encodeURIComponent(who.user_id)}/status`;
      const sync = (who: { access_token: string }, query = '') => server.api.get<PresenceSync>(`/v3/sync?set_presence=offline${query}`, { token: who.access_token });
      const senders = (body: PresenceSync) => body.presence.events.map((e) => e.sender).sort();
      assert.equal((await server.api.put(status(dan), { presence: 'online', status_msg: 'here' }, { token: dan.access_token })).status, 200);
      assert.equal((await server.api.put(status(erin), { presence: 'unavailable' }, { token: erin.access_token })).status, 200);
      assert.equal((await server.api.get(status(erin), { token: dan.access_token })).status, 403, 'no shared room yet');
      const before = await sync(dan);
      assert.deepEqual(senders(before.body), [dan.user_id], 'strangers are not shown');

      const created = await server.api.post<{ room_id: string }>('/v3/createRoom', { preset: 'public_chat' }, { token: dan.access_token });
      assert.equal((await server.api.post(`/v3/join/${encodeURIComponent(created.body.room_id)}`, {}, { token: erin.access_token })).status, 200);
      // Dan newly shares a room with Erin: her (unchanged) presence comes with it, once.
      const joined = await sync(dan, `&since=${before.body.next_batch}`);
      assert.deepEqual(joined.body.presence.events.find((e) => e.sender === erin.user_id)?.content.presence, 'unavailable');
      const quiet = await sync(dan, `&since=${joined.body.next_batch}`);
      assert.deepEqual(senders(quiet.body), []);
      assert.equal((await server.api.get<{ presence: string }>(status(erin), { token: dan.access_token })).body.presence, 'unavailable');
      assert.deepEqual(senders((await sync(erin)).body), [dan.user_id, erin.user_id].sort(), 'an initial sync has the room-mates');

      // Erin's change wakes Dan's waiting sync and is in it.
      const waiting = sync(dan, `&since=${quiet.body.next_batch}&timeout=20000`);
      await until(() => server.hs.services.notifier.waiting === 1, 'the sync to wait');
      const t = Date.now();
      assert.equal((await server.api.put(status(erin), { presence: 'online' }, { token: erin.access_token })).status, 200);
      const woke = await waiting;
      assert.ok(Date.now() - t < 2000, 'the change wakes the room-mate');
      assert.deepEqual(woke.body.presence.events.map((e) => [e.sender, e.content.presence]), [[erin.user_id, 'online']]);

      // A new room-mate who never had a presence comes as offline.
      const frank = await server.api.register('frank-presence');
      assert.equal((await server.api.post(`/v3/join/${encodeURIComponent(created.body.room_id)}`, {}, { token: frank.access_token })).status, 200);
      const met = await sync(dan, `&since=${woke.body.next_batch}`);
      assert.deepEqual(met.body.presence.events.filter((e) => e.sender === frank.user_id), [{ type: 'm.presence', sender: frank.user_id, content: { presence: 'offline' } }]);
    });

    it('hands out TURN REST credentials from the shared secret', async () => {
      const res = await server.api.get<{ username: string; password: string; uris: string[]; ttl: number }>('/v3/voip/turnServer', { token });
      assert.equal(res.status, 200);
      assert.equal(res.body.ttl, 3600);
      assert.equal(res.body.username, `${Math.floor(clock.now() / 1000) + 3600}:${userId}`);
      assert.equal(res.body.password, createHmac('sha1', 'turn-secret').update(res.body.username).digest('base64'));
      assert.deepEqual(res.body.uris, ['turn:turn.test.local:3478?transport=udp']);
    });

    it('lists no third-party protocols', async () => {
      assert.deepEqual((await server.api.get('/v3/thirdparty/protocols', { token })).body, {});
      assert.equal((await server.api.get('/v3/thirdparty/protocol/irc', { token })).body.errcode, 'M_NOT_FOUND');
      assert.deepEqual((await server.api.get('/v3/thirdparty/location?alias=%23a%3Ab', { token })).body, []);
    });
  });
}

describe('TURN without configuration', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer('sqlite');
  });
  after(async () => server.close());

  it('answers {} as Synapse does (the spec schema has no shape for "no TURN server")', async () => {
    const alice = await server.api.register('alice');
    const res = await fetch(`${server.url}/_matrix/client/v3/voip/turnServer`, { headers: { authorization: `Bearer ${alice.access_token}` } });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});
  });
});
