import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';

const SECRET = 'a shared secret for the test';

function mac(nonce: string, user: string, password: string, admin: boolean, key = SECRET): string {
  return createHmac('sha1', key).update(`${nonce}\x00${user}\x00${password}\x00${admin ? 'admin' : 'notadmin'}`).digest('hex');
}

for (const engine of HTTP_ENGINES) {
  describe(`shared-secret registration (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine, { registration_shared_secret: SECRET, enable_registration: false });
    });
    after(async () => server.close());

    const nonce = async () => (await server.api.get('/_synapse/admin/v1/register')).body.nonce as string;

    it('creates an account with a correct HMAC, even with public registration off', async () => {
      const n = await nonce();
      const res = await server.api.post('/_synapse/admin/v1/register', { nonce: n, username: 'Admin1', password: 'pw-admin-1', admin: false, mac: mac(n, 'Admin1', 'pw-admin-1', false), displayname: 'The Admin' });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.user_id, '@admin1:test.local');
      assert.equal(typeof res.body.access_token, 'string');
      await server.api.login('admin1', 'pw-admin-1');
      const profile = await server.api.get('/v3/profile/@admin1:test.local');
      assert.equal(profile.body.displayname, 'The Admin');
    });

    it('refuses a wrong HMAC and a reused or unknown nonce', async () => {
      const n = await nonce();
      const wrong = await server.api.post('/_synapse/admin/v1/register', { nonce: n, username: 'bob', password: 'pw', admin: false, mac: mac(n, 'bob', 'pw', false, 'wrong key') });
      assert.equal(wrong.status, 403);
      assert.equal(wrong.body.errcode, 'M_FORBIDDEN');
      const reused = await server.api.post('/_synapse/admin/v1/register', { nonce: n, username: 'bob', password: 'pw', admin: false, mac: mac(n, 'bob', 'pw', false) });
      assert.equal(reused.status, 400);
      const unknown = await server.api.post('/_synapse/admin/v1/register', { nonce: 'nope', username: 'bob', password: 'pw', admin: false, mac: mac('nope', 'bob', 'pw', false) });
      assert.equal(unknown.status, 400);
      assert.equal((await server.api.post('/v3/login', { type: 'm.login.password', user: 'bob', password: 'pw' })).status, 403);
    });

    it('is off when no shared secret is configured', async () => {
      const other = await startTestServer(engine);
      try {
        const res = await other.api.get('/_synapse/admin/v1/register');
        assert.equal(res.status, 400);
        assert.equal(res.body.errcode, 'M_UNKNOWN');
      } finally {
        await other.close();
      }
    });
  });
}
