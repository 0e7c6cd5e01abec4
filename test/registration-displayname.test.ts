import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';

const PW = 'pw-display-1234';

for (const engine of HTTP_ENGINES) {
  describe(`registration gives the localpart as display name (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine, { allow_guest_access: true });
    });
    after(async () => server.close());

    it('on /register, for guests, and for the CLI/admin path (AccountService.register)', async () => {
      await server.api.register('eleanor', PW);
      assert.deepEqual((await server.api.get('/v3/profile/@eleanor:test.local')).body, { displayname: 'eleanor' });

      const guest = await server.api.post('/v3/register?kind=guest', {});
      assert.equal(guest.status, 200, JSON.stringify(guest.body));
      const guestId = guest.body.user_id as string;
      const localpart = guestId.slice(1, guestId.indexOf(':'));
      assert.deepEqual((await server.api.get(`/v3/profile/${guestId}/displayname`)).body, { displayname: localpart });

      // register-user (the CLI) goes through the same service call.
      await server.hs.services.accounts.register({ localpart: 'cli-made', password: PW, guest: false, inhibitLogin: true, refresh: false, ip: '127.0.0.1' });
      assert.deepEqual((await server.api.get('/v3/profile/@cli-made:test.local/displayname')).body, { displayname: 'cli-made' });
    });
  });
}
