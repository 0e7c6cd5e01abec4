import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';

for (const engine of HTTP_ENGINES) {
  describe(`core smoke (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine);
    });
    after(async () => server.close());

    it('serves /versions with the MSC2263 unstable flag', async () => {
      const res = await server.api.get('/versions');
      assert.equal(res.status, 200);
      assert.deepEqual((res.body.unstable_features as Record<string, boolean>)['m.require_identity_server'], false);
    });

    it('registers, logs in, answers whoami, and logs out', async () => {
      const reg = await server.api.register('alice');
      assert.equal(reg.user_id, '@alice:test.local');
      const login = await server.api.login('alice');
      const who = await server.api.get('/v3/account/whoami', { token: login.access_token });
      assert.equal(who.status, 200);
      assert.equal(who.body.user_id, '@alice:test.local');
      assert.equal(who.body.device_id, login.device_id);
      assert.equal((await server.api.post('/v3/logout', {}, { token: login.access_token })).status, 200);
      const gone = await server.api.get('/v3/account/whoami', { token: login.access_token });
      assert.equal(gone.status, 401);
      assert.equal(gone.body.errcode, 'M_UNKNOWN_TOKEN');
    });
  });
}

describe('JSON content type', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer('sqlite');
  });
  after(async () => server.close());

  it('answers every JSON body as application/json without a charset, as Synapse does', async () => {
    const alice = await server.api.register('ctype');
    const answers = [
      await server.api.get('/versions'),
      await server.api.get('/v3/account/whoami', { token: alice.access_token }),
      await server.api.get('/v3/account/whoami'),
      await server.api.post('/v3/login', { type: 'm.login.password' }),
      await server.api.post('/v3/user/x/filter', undefined, { token: alice.access_token, rawBody: '{nope', headers: { 'content-type': 'application/json' } }),
      await server.api.delete(`/v3/devices/${alice.device_id}`, {}, { token: alice.access_token }),
      await server.api.get('/v3/no/such/endpoint'),
      await server.api.request('DELETE', '/v3/login'),
      await server.api.get('/v3/devices/%ZZ', { token: alice.access_token }),
    ];
    assert.deepEqual(
      answers.map((a) => [a.status, a.headers.get('content-type')]),
      [200, 200, 401, 400, 400, 401, 404, 405, 400].map((status) => [status, 'application/json']),
    );
  });
});
