import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

// Both engines: two processes on one database. README: "a revoked token is refused at once from any
// process (nothing is cached but prepared SQL)".
for (const engine of ENGINES) {
  describe(`a revoked access token is refused at once by another process (${engine})`, () => {
    let first: TestServer;
    let second: TestServer;
    before(async () => {
      first = await startTestServer(engine);
      second = await startTestServer(engine, {}, { database: first.config.database as unknown as Record<string, unknown> });
    });
    after(async () => {
      await second.close();
      await first.close();
    });

    /** The other process has just used the token, so that anything it could cache is warm. */
    async function inUseAtSecond(token: string) {
      for (let i = 0; i < 3; i++) assert.equal((await second.api.get('/v3/account/whoami', { token })).status, 200);
    }

    async function refusedAtSecond(token: string) {
      const res = await second.api.get('/v3/account/whoami', { token });
      assert.equal(res.status, 401, JSON.stringify(res.body));
      assert.equal(res.body.errcode, 'M_UNKNOWN_TOKEN');
    }

    it('after /logout at one process, the next request at the other is refused', async () => {
      const alice = await first.api.register('revoked');
      await inUseAtSecond(alice.access_token);
      assert.equal((await first.api.post('/v3/logout', {}, { token: alice.access_token })).status, 200);
      await refusedAtSecond(alice.access_token);
    });

    it('after /logout/all at one process, every token of the user is refused at the other', async () => {
      const bob = await first.api.register('revokedall');
      const other = await second.api.login('revokedall');
      await inUseAtSecond(bob.access_token);
      await inUseAtSecond(other.access_token);
      assert.equal((await first.api.post('/v3/logout/all', {}, { token: bob.access_token })).status, 200);
      await refusedAtSecond(bob.access_token);
      await refusedAtSecond(other.access_token);
    });

    it('after a device is deleted at one process, its token is refused at the other', async () => {
      const carol = await first.api.register('deviceless', 'pw-deviceless-1');
      const doomed = await second.api.login('deviceless', 'pw-deviceless-1');
      await inUseAtSecond(doomed.access_token);
      const started = await first.api.delete(`/v3/devices/${doomed.device_id}`, {}, { token: carol.access_token });
      assert.equal(started.status, 401);
      const deleted = await first.api.delete(
        `/v3/devices/${doomed.device_id}`,
        { auth: { type: 'm.login.password', session: started.body.session, identifier: { type: 'm.id.user', user: 'deviceless' }, password: 'pw-deviceless-1' } },
        { token: carol.access_token },
      );
      assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
      await refusedAtSecond(doomed.access_token);
      assert.equal((await second.api.get('/v3/account/whoami', { token: carol.access_token })).status, 200);
    });
  });
}
