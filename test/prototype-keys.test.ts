import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

/** Keys that name Object.prototype or its members when used on a plain object. */
const PROTOTYPE_NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'];

const sessionKey = (index = 0) => ({ first_message_index: index, forwarded_count: 0, is_verified: false, session_data: { ciphertext: 'c', ephemeral: 'e', mac: 'm' } });

type Keys = { rooms: Record<string, { sessions: Record<string, unknown> }> };

for (const engine of ENGINES) {
  describe(`client-chosen keys named like Object.prototype members (${engine})`, () => {
    let server: TestServer;
    let alice: { user_id: string; access_token: string; device_id: string };
    let version: string;
    const token = () => ({ token: alice.access_token });

    before(async () => {
      server = await startTestServer(engine);
      alice = await server.api.register('alice');
      const created = await server.api.post<{ version: string }>(
        '/v3/room_keys/version',
        { algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: { public_key: 'abc' } },
        token(),
      );
      assert.equal(created.status, 200);
      version = created.body.version;
    });
    after(async () => server.close());

    it('refuses key backups for room IDs that are not room IDs, and GET /room_keys/keys keeps working', async () => {
      for (const roomId of [...PROTOTYPE_NAMES, '!', 'room', '! spaced:test.local', `!${'a'.repeat(255)}`]) {
        const one = await server.api.put(`/v3/room_keys/keys/${encodeURIComponent(roomId)}/sid?version=${version}`, sessionKey(), token());
        assert.equal(one.status, 400, `${roomId}: ${JSON.stringify(one.body)}`);
        // (A path parameter over 100 characters is refused by the router before, as M_UNRECOGNIZED.)
        if (roomId.length <= 100) assert.equal(one.body.errcode, 'M_INVALID_PARAM');
        const room = await server.api.put(`/v3/room_keys/keys/${encodeURIComponent(roomId)}?version=${version}`, { sessions: { sid: sessionKey() } }, token());
        assert.equal(room.status, 400, roomId);
        const all = await server.api.put(`/v3/room_keys/keys?version=${version}`, { rooms: { [roomId]: { sessions: { sid: sessionKey() } } } }, token());
        assert.equal(all.status, 400, roomId);
        assert.equal(all.body.errcode, 'M_INVALID_PARAM');
        const got = await server.api.get<Keys>(`/v3/room_keys/keys?version=${version}`, token());
        assert.equal(got.status, 200, JSON.stringify(got.body));
        assert.deepEqual(got.body.rooms, {});
      }
    });

    it('refuses empty and overlong session IDs', async () => {
      const empty = await server.api.put(`/v3/room_keys/keys/${encodeURIComponent('!r:test.local')}?version=${version}`, { sessions: { '': sessionKey() } }, token());
      assert.equal(empty.status, 400);
      assert.equal(empty.body.errcode, 'M_INVALID_PARAM');
      const long = await server.api.put(`/v3/room_keys/keys?version=${version}`, { rooms: { '!r:test.local': { sessions: { ['s'.repeat(256)]: sessionKey() } } } }, token());
      assert.equal(long.status, 400);
      assert.equal(long.body.errcode, 'M_INVALID_PARAM');
    });

    it('stores and returns sessions whose IDs are named like prototype members, in rooms of both ID shapes', async () => {
      const rooms = ['!old:test.local', '!v12OpaqueRoomIdWithoutServerName'];
      for (const roomId of rooms) {
        const sessions = Object.fromEntries(PROTOTYPE_NAMES.map((id, i) => [id, sessionKey(i)]));
        const put = await server.api.put(`/v3/room_keys/keys?version=${version}`, { rooms: { [roomId]: { sessions } } }, token());
        assert.equal(put.status, 200, JSON.stringify(put.body));
        const single = await server.api.put(`/v3/room_keys/keys/${encodeURIComponent(roomId)}/${encodeURIComponent('valueOf')}?version=${version}`, sessionKey(9), token());
        assert.equal(single.status, 200);
      }
      const all = await server.api.get<Keys>(`/v3/room_keys/keys?version=${version}`, token());
      assert.equal(all.status, 200, JSON.stringify(all.body));
      assert.deepEqual(Object.keys(all.body.rooms).sort(), [...rooms].sort());
      for (const roomId of rooms) assert.deepEqual(Object.keys(all.body.rooms[roomId]!.sessions).sort(), [...PROTOTYPE_NAMES, 'valueOf'].sort());
      const room = await server.api.get<{ sessions: Record<string, { first_message_index: number }> }>(`/v3/room_keys/keys/${encodeURIComponent(rooms[0]!)}?version=${version}`, token());
      assert.equal(room.status, 200);
      assert.equal(Object.hasOwn(room.body.sessions, '__proto__'), true);
      assert.equal(room.body.sessions['__proto__']!.first_message_index, 0);
      const one = await server.api.get<{ first_message_index: number }>(`/v3/room_keys/keys/${encodeURIComponent(rooms[0]!)}/__proto__?version=${version}`, token());
      assert.equal(one.status, 200);
      assert.equal(one.body.first_message_index, 0);
      // A room the backup does not have reads as empty, whatever it is called.
      for (const roomId of PROTOTYPE_NAMES) {
        const missing = await server.api.get(`/v3/room_keys/keys/${encodeURIComponent(roomId)}?version=${version}`, token());
        assert.equal(missing.status, 200);
        assert.deepEqual(missing.body, { sessions: {} });
      }
    });

    it('answers keys upload, query and claim for devices and algorithms named like prototype members', async () => {
      const devices = ['__proto__', 'constructor'];
      for (const deviceId of devices) {
        const login = await server.api.post<{ access_token: string }>('/v3/login', {
          type: 'm.login.password',
          identifier: { type: 'm.id.user', user: 'alice' },
          password: 'correct horse battery',
          device_id: deviceId,
        });
        assert.equal(login.status, 200, JSON.stringify(login.body));
        const upload = await server.api.post<{ one_time_key_counts: Record<string, number> }>(
          '/v3/keys/upload',
          {
            device_keys: {
              user_id: alice.user_id,
              device_id: deviceId,
              algorithms: ['m.olm.v1.curve25519-aes-sha2'],
              keys: { [`ed25519:${deviceId}`]: 'edkey', [`curve25519:${deviceId}`]: 'curvekey' },
              signatures: { [alice.user_id]: { [`ed25519:${deviceId}`]: 'sig' } },
            },
            one_time_keys: { 'signed_curve25519:AAAA': { key: 'otk', signatures: {} }, '__proto__:BBBB': 'odd', 'toString:CCCC': 'odd' },
          },
          { token: login.body.access_token },
        );
        assert.equal(upload.status, 200, JSON.stringify(upload.body));
        assert.equal(upload.body.one_time_key_counts.signed_curve25519, 1);
        assert.equal(Object.hasOwn(upload.body.one_time_key_counts, '__proto__'), true);
        assert.equal(upload.body.one_time_key_counts['__proto__'], 1);
        assert.equal(upload.body.one_time_key_counts.toString, 1);
      }

      const query = await server.api.post<{ device_keys: Record<string, Record<string, { device_id: string }>> }>(
        '/v3/keys/query',
        { device_keys: { [alice.user_id]: devices } },
        token(),
      );
      assert.equal(query.status, 200, JSON.stringify(query.body));
      assert.deepEqual(Object.keys(query.body.device_keys[alice.user_id]!).sort(), [...devices].sort());
      assert.equal(query.body.device_keys[alice.user_id]!['__proto__']!.device_id, '__proto__');

      const claim = await server.api.post<{ one_time_keys: Record<string, Record<string, Record<string, unknown>>> }>(
        '/v3/keys/claim',
        { one_time_keys: { [alice.user_id]: { ['__proto__']: 'signed_curve25519', constructor: '__proto__' } } },
        token(),
      );
      assert.equal(claim.status, 200, JSON.stringify(claim.body));
      const claimed = claim.body.one_time_keys[alice.user_id]!;
      assert.deepEqual(Object.keys(claimed).sort(), devices.slice().sort());
      assert.deepEqual(Object.keys(claimed['__proto__']!), ['signed_curve25519:AAAA']);
      assert.deepEqual(claimed.constructor, { '__proto__:BBBB': 'odd' });

      for (const body of [{ one_time_keys: { ['__proto__']: { D: 'signed_curve25519' } } }, { device_keys: { ['__proto__']: [] } }]) {
        const path = 'one_time_keys' in body ? '/v3/keys/claim' : '/v3/keys/query';
        const res = await server.api.post(path, body, token());
        assert.equal(res.status, 400, `${path}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.errcode, 'M_INVALID_PARAM');
      }
    });
  });
}
