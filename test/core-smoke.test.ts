import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

for (const engine of ENGINES) {
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
