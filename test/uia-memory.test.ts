import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

type Body = Record<string, unknown>;
const PW = 'pw-memory-1234';

for (const engine of ENGINES) {
  // Both engines: the remembered request and the completed result are stored and read back.
  describe(`UIA sessions remember the request and answer retries (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine);
    });
    after(async () => server.close());

    const sessionRow = (session: string) => server.hs.services.store.uia.get(session);

    /** Opens a registration UIA session with `body` and returns its ID. */
    async function openRegistration(body: Body): Promise<string> {
      const res = await server.api.post('/v3/register', body);
      assert.equal(res.status, 401, JSON.stringify(res.body));
      return res.body.session as string;
    }

    it('registers from the first request\'s parameters when the second sends only auth (non-ASCII password)', async () => {
      const password = 'übers3kr1t-ß';
      const session = await openRegistration({ username: 'Remembered', password, device_id: 'XYZZY', initial_device_display_name: 'Pocket phone' });
      const row = await sessionRow(session);
      assert.ok(row);
      // The password is kept only as a hash, never in clear.
      assert.doesNotMatch(JSON.stringify(row), /übers3kr1t/);
      assert.ok(row.secret_hash && row.secret_hash !== password);

      const res = await server.api.post('/v3/register', { auth: { type: 'm.login.dummy', session } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.user_id, '@remembered:test.local');
      assert.equal(res.body.device_id, 'XYZZY');
      const device = await server.api.get('/v3/devices/XYZZY', { token: res.body.access_token as string });
      assert.equal(device.body.display_name, 'Pocket phone');
      assert.equal((await server.api.login('remembered', password)).user_id, '@remembered:test.local');
      // Completion forgets the hash.
      assert.equal((await sessionRow(session))?.secret_hash, null);
    });

    it('remembers inhibit_login', async () => {
      const session = await openRegistration({ username: 'inhibited', password: PW, inhibit_login: true });
      const res = await server.api.post('/v3/register', { auth: { type: 'm.login.dummy', session } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.user_id, '@inhibited:test.local');
      assert.equal(res.body.access_token, undefined);
      assert.equal(res.body.device_id, undefined);
    });

    it('a later request with parameters replaces the remembered ones; a display name alone does not', async () => {
      const session = await openRegistration({ username: 'first-name', password: PW });
      // Some clients send the display name alone: it must not wipe the remembered username.
      const alone = await server.api.post('/v3/register', { initial_device_display_name: 'x', auth: { session } });
      assert.equal(alone.status, 401);
      assert.deepEqual(JSON.parse((await sessionRow(session))!.params!), { username: 'first-name' });
      const res = await server.api.post('/v3/register', { username: 'second-name', auth: { type: 'm.login.dummy', session } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.user_id, '@second-name:test.local');
      assert.equal((await server.api.login('second-name', PW)).user_id, '@second-name:test.local');
    });

    it('a retry of the completed registration gets the same user and device with a fresh token, and creates nothing', async () => {
      const body = { username: 'retrier', password: PW };
      const session = await openRegistration(body);
      const auth = { type: 'm.login.dummy', session };
      const first = await server.api.post('/v3/register', { ...body, auth });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const users = await server.hs.services.store.users.countUsers();

      const again = await server.api.post('/v3/register', { ...body, auth });
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(again.body.user_id, first.body.user_id);
      assert.equal(again.body.device_id, first.body.device_id);
      assert.notEqual(again.body.access_token, first.body.access_token);
      assert.equal(await server.hs.services.store.users.countUsers(), users);
      // One device, one live token: the one from the lost answer is replaced.
      assert.equal((await server.api.get('/v3/account/whoami', { token: first.body.access_token as string })).status, 401);
      const devices = await server.api.get<{ devices: unknown[] }>('/v3/devices', { token: again.body.access_token as string });
      assert.equal(devices.body.devices.length, 1);
    });

    it('a retry without the password, or with other parameters, gets the 401 listing the completed stages', async () => {
      const body = { username: 'guarded', password: PW };
      const session = await openRegistration(body);
      assert.equal((await server.api.post('/v3/register', { ...body, auth: { type: 'm.login.dummy', session } })).status, 200);
      for (const retry of [
        { auth: { type: 'm.login.dummy', session } },
        { username: 'guarded', password: 'not-the-password-1', auth: { type: 'm.login.dummy', session } },
        { username: 'someone-else', password: PW, auth: { type: 'm.login.dummy', session } },
      ]) {
        const res = await server.api.post('/v3/register', retry);
        assert.equal(res.status, 401, JSON.stringify(retry));
        assert.deepEqual(res.body.completed, ['m.login.dummy']);
        assert.deepEqual(res.body.flows, [{ stages: ['m.login.dummy'] }]);
        assert.equal(res.body.session, session);
        assert.equal(res.body.access_token, undefined);
      }
      assert.equal((await server.api.get('/v3/register/available?username=someone-else')).status, 200);
    });

    it('a retry of a completed device deletion answers again without deleting anything else', async () => {
      const a = await server.api.register('deleter', PW);
      const b = await server.api.login('deleter', PW);
      const c = await server.api.login('deleter', PW);
      const body = { devices: [b.device_id] };
      const first = await server.api.post('/v3/delete_devices', body, { token: a.access_token });
      const auth = { type: 'm.login.password', session: first.body.session, password: PW };
      assert.equal((await server.api.post('/v3/delete_devices', { ...body, auth }, { token: a.access_token })).status, 200);
      const again = await server.api.post('/v3/delete_devices', { ...body, auth }, { token: a.access_token });
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.deepEqual(again.body, {});
      const other = await server.api.post('/v3/delete_devices', { devices: [c.device_id], auth }, { token: a.access_token });
      assert.equal(other.status, 401);
      assert.deepEqual(other.body.completed, ['m.login.password']);
      assert.equal((await server.api.get('/v3/account/whoami', { token: c.access_token })).status, 200);
    });

    it('changes the password from the remembered new_password; a retry answers again, another password is refused', async () => {
      const a = await server.api.register('changer', PW);
      const first = await server.api.post('/v3/account/password', { new_password: 'pw-second-5678', logout_devices: false }, { token: a.access_token });
      assert.equal(first.status, 401);
      const session = first.body.session as string;
      assert.doesNotMatch(JSON.stringify(await sessionRow(session)), /pw-second-5678/);
      const auth = { type: 'm.login.password', session, password: PW };
      const done = await server.api.post('/v3/account/password', { auth }, { token: a.access_token });
      assert.equal(done.status, 200, JSON.stringify(done.body));
      assert.equal((await server.api.login('changer', 'pw-second-5678')).user_id, '@changer:test.local');

      const again = await server.api.post('/v3/account/password', { new_password: 'pw-second-5678', logout_devices: false, auth }, { token: a.access_token });
      assert.equal(again.status, 200, JSON.stringify(again.body));
      const other = await server.api.post('/v3/account/password', { new_password: 'pw-third-91011', logout_devices: false, auth }, { token: a.access_token });
      assert.equal(other.status, 401);
      assert.deepEqual(other.body.completed, ['m.login.password']);
      assert.equal((await server.api.post('/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'changer' }, password: 'pw-third-91011' })).status, 403);
    });
  });
}
