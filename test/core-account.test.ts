import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ApiResponse } from './helpers/api.js';
import { ENGINES, HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';
import { SmtpSink } from './helpers/smtp.js';

type Body = Record<string, unknown>;
const PW = 'pw-account-1234';

for (const engine of ENGINES) {
  // Both engines: device and account teardown in transactions.
  describe(`devices, password, deactivation, profile (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine);
    });
    after(async () => server.close());

    /** Sends a UIA-protected request twice: first to open a session, then with m.login.password. */
    async function withPassword(method: 'POST' | 'DELETE', path: string, body: Body, token: string, password = PW): Promise<ApiResponse> {
      const first = await server.api.request(method, path, body, { token });
      assert.equal(first.status, 401, JSON.stringify(first.body));
      assert.deepEqual(first.body.flows, [{ stages: ['m.login.password'] }]);
      assert.deepEqual(first.body.completed, []);
      return server.api.request(method, path, { ...body, auth: { type: 'm.login.password', session: first.body.session, password } }, { token });
    }

    async function deviceIds(token: string): Promise<string[]> {
      const res = await server.api.get<{ devices: Body[] }>('/v3/devices', { token });
      assert.equal(res.status, 200);
      return res.body.devices.map((d) => d.device_id as string).sort();
    }

    it('lists, gets and renames devices; unknown devices are 404', async () => {
      const reg = await server.api.register('devuser', PW, { device_id: 'FIRST', initial_device_display_name: 'First' });
      const second = await server.api.post('/v3/login', {
        type: 'm.login.password',
        identifier: { type: 'm.id.user', user: 'devuser' },
        password: PW,
        device_id: 'SECOND',
      });
      assert.equal(second.status, 200);
      assert.deepEqual(await deviceIds(reg.access_token), ['FIRST', 'SECOND']);
      const list = await server.api.get<{ devices: Body[] }>('/v3/devices', { token: reg.access_token });
      const first = list.body.devices.find((d) => d.device_id === 'FIRST')!;
      assert.equal(first.display_name, 'First');
      assert.equal(first.last_seen_ip, '127.0.0.1');
      assert.equal(typeof first.last_seen_ts, 'number');

      const got = await server.api.get('/v3/devices/FIRST', { token: reg.access_token });
      assert.equal(got.status, 200);
      assert.equal(got.body.device_id, 'FIRST');
      const renamed = await server.api.put('/v3/devices/SECOND', { display_name: 'Renamed' }, { token: reg.access_token });
      assert.equal(renamed.status, 200);
      assert.equal((await server.api.get('/v3/devices/SECOND', { token: reg.access_token })).body.display_name, 'Renamed');
      assert.equal((await server.api.put('/v3/devices/SECOND', {}, { token: reg.access_token })).status, 200);
      assert.equal((await server.api.get('/v3/devices/SECOND', { token: reg.access_token })).body.display_name, 'Renamed');

      for (const res of [
        await server.api.get('/v3/devices/NOPE', { token: reg.access_token }),
        await server.api.put('/v3/devices/NOPE', { display_name: 'x' }, { token: reg.access_token }),
        await server.api.delete('/v3/devices/NOPE', {}, { token: reg.access_token }),
      ]) {
        assert.equal(res.status, 404);
        assert.equal(res.body.errcode, 'M_NOT_FOUND');
      }
      // Another user's device is as unknown as a missing one.
      const other = await server.api.register('devother', PW);
      assert.equal((await server.api.get('/v3/devices/FIRST', { token: other.access_token })).status, 404);
      assert.equal((await server.api.put('/v3/devices/FIRST', { display_name: 'mine' }, { token: other.access_token })).status, 404);
      assert.equal((await server.api.get('/v3/devices/FIRST', { token: reg.access_token })).body.display_name, 'First');
    });

    it('DELETE /devices/{id} needs the password; a wrong one is 401 with M_FORBIDDEN in the UIA body', async () => {
      const a = await server.api.register('deleter', PW);
      const b = await server.api.login('deleter', PW);
      const wrong = await withPassword('DELETE', `/v3/devices/${b.device_id}`, {}, a.access_token, 'wrong-password');
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.errcode, 'M_FORBIDDEN');
      assert.deepEqual(wrong.body.flows, [{ stages: ['m.login.password'] }]);
      assert.deepEqual(wrong.body.completed, []);
      assert.equal(typeof wrong.body.session, 'string');
      assert.equal((await server.api.get('/v3/account/whoami', { token: b.access_token })).status, 200);

      const ok = await withPassword('DELETE', `/v3/devices/${b.device_id}`, {}, a.access_token);
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.equal((await server.api.get('/v3/account/whoami', { token: b.access_token })).status, 401);
      assert.deepEqual(await deviceIds(a.access_token), [a.device_id]);
    });

    it("DELETE /devices/{id} with another user's password is 403 M_FORBIDDEN, right password or not, and keeps the session", async () => {
      const a = await server.api.register('victim-devices', PW);
      const b = await server.api.login('victim-devices', PW);
      await server.api.register('intruder-devices', 'intruder-pass-1234');
      const first = await server.api.delete(`/v3/devices/${b.device_id}`, {}, { token: a.access_token });
      const session = first.body.session;
      for (const password of ['intruder-pass-1234', 'not-their-password']) {
        const res = await server.api.delete(
          `/v3/devices/${b.device_id}`,
          { auth: { type: 'm.login.password', session, identifier: { type: 'm.id.user', user: 'intruder-devices' }, password } },
          { token: a.access_token },
        );
        assert.equal(res.status, 403, JSON.stringify(res.body));
        assert.equal(res.body.errcode, 'M_FORBIDDEN');
        assert.equal(res.body.flows, undefined, 'a refusal, not a UIA challenge');
      }
      assert.deepEqual(await deviceIds(a.access_token), [a.device_id, b.device_id].sort());
      const own = await server.api.delete(`/v3/devices/${b.device_id}`, { auth: { type: 'm.login.password', session, identifier: { type: 'm.id.user', user: 'victim-devices' }, password: PW } }, { token: a.access_token });
      assert.equal(own.status, 200);
    });

    it('a wrong password can be retried within the same session', async () => {
      const a = await server.api.register('retrier', PW);
      const b = await server.api.login('retrier', PW);
      const first = await server.api.delete(`/v3/devices/${b.device_id}`, {}, { token: a.access_token });
      const session = first.body.session;
      const wrong = await server.api.delete(`/v3/devices/${b.device_id}`, { auth: { type: 'm.login.password', session, password: 'nope' } }, { token: a.access_token });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.session, session);
      const right = await server.api.delete(`/v3/devices/${b.device_id}`, { auth: { type: 'm.login.password', session, password: PW } }, { token: a.access_token });
      assert.equal(right.status, 200);
    });

    it('POST /delete_devices deletes the listed devices behind UIA, ignoring unknown IDs', async () => {
      const a = await server.api.register('bulk', PW);
      const b = await server.api.login('bulk', PW);
      const c = await server.api.login('bulk', PW);
      const wrong = await withPassword('POST', '/v3/delete_devices', { devices: [b.device_id, c.device_id] }, a.access_token, 'bad');
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.errcode, 'M_FORBIDDEN');
      assert.equal((await deviceIds(a.access_token)).length, 3);
      const ok = await withPassword('POST', '/v3/delete_devices', { devices: [b.device_id, c.device_id, 'UNKNOWN'] }, a.access_token);
      assert.equal(ok.status, 200);
      assert.deepEqual(await deviceIds(a.access_token), [a.device_id]);
      for (const t of [b, c]) assert.equal((await server.api.get('/v3/account/whoami', { token: t.access_token })).status, 401);
      // Deleting one's own current device logs this session out.
      const self = await withPassword('POST', '/v3/delete_devices', { devices: [a.device_id] }, a.access_token);
      assert.equal(self.status, 200);
      assert.equal((await server.api.get('/v3/account/whoami', { token: a.access_token })).status, 401);
    });

    it('a device-deletion session cannot be replayed for a second deletion', async () => {
      const a = await server.api.register('replayer', PW);
      const b = await server.api.login('replayer', PW);
      const c = await server.api.login('replayer', PW);
      const first = await server.api.post('/v3/delete_devices', { devices: [b.device_id] }, { token: a.access_token });
      const auth = { type: 'm.login.password', session: first.body.session, password: PW };
      assert.equal((await server.api.post('/v3/delete_devices', { devices: [b.device_id], auth }, { token: a.access_token })).status, 200);
      const replay = await server.api.post('/v3/delete_devices', { devices: [c.device_id], auth: { session: first.body.session } }, { token: a.access_token });
      assert.notEqual(replay.status, 200);
      assert.equal((await server.api.get('/v3/account/whoami', { token: c.access_token })).status, 200);
    });

    it('changes the password: other devices are logged out by default, this one stays', async () => {
      const a = await server.api.register('changer', PW);
      const b = await server.api.login('changer', PW);
      const first = await server.api.post('/v3/account/password', { new_password: 'pw-new-5678' }, { token: a.access_token });
      assert.equal(first.status, 401);
      const wrong = await server.api.post(
        '/v3/account/password',
        { new_password: 'pw-new-5678', auth: { type: 'm.login.password', session: first.body.session, password: 'wrong' } },
        { token: a.access_token },
      );
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.errcode, 'M_FORBIDDEN');
      const ok = await server.api.post(
        '/v3/account/password',
        { new_password: 'pw-new-5678', auth: { type: 'm.login.password', session: first.body.session, password: PW } },
        { token: a.access_token },
      );
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.equal((await server.api.get('/v3/account/whoami', { token: a.access_token })).status, 200);
      assert.equal((await server.api.get('/v3/account/whoami', { token: b.access_token })).status, 401);
      assert.deepEqual(await deviceIds(a.access_token), [a.device_id]);
      const old = await server.api.post('/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'changer' }, password: PW });
      assert.equal(old.status, 403);
      assert.equal((await server.api.login('changer', 'pw-new-5678')).user_id, '@changer:test.local');
    });

    it('logout_devices: false keeps the other devices', async () => {
      const a = await server.api.register('keeper', PW);
      const b = await server.api.login('keeper', PW);
      const res = await withPassword('POST', '/v3/account/password', { new_password: 'pw-kept-5678', logout_devices: false }, a.access_token);
      assert.equal(res.status, 200);
      assert.equal((await server.api.get('/v3/account/whoami', { token: b.access_token })).status, 200);
      assert.equal((await deviceIds(a.access_token)).length, 2);
      await server.api.login('keeper', 'pw-kept-5678');
    });

    it('a password change needs new_password', async () => {
      const a = await server.api.register('nonew', PW);
      const res = await withPassword('POST', '/v3/account/password', {}, a.access_token);
      assert.equal(res.status, 400);
      assert.equal(res.body.errcode, 'M_MISSING_PARAM');
      await server.api.login('nonew', PW);
    });

    it('deactivates behind UIA: tokens die at once, the account never logs in again, the ID stays taken', async () => {
      const a = await server.api.register('goner', PW);
      const b = await server.api.login('goner', PW);
      await server.api.put('/v3/profile/@goner:test.local/displayname', { displayname: 'Goner' }, { token: a.access_token });
      const wrong = await withPassword('POST', '/v3/account/deactivate', {}, a.access_token, 'bad');
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.errcode, 'M_FORBIDDEN');
      assert.equal((await server.api.get('/v3/account/whoami', { token: a.access_token })).status, 200);

      const ok = await withPassword('POST', '/v3/account/deactivate', { erase: false }, a.access_token);
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.equal(ok.body.id_server_unbind_result, 'success');
      for (const t of [a, b]) {
        const who = await server.api.get('/v3/account/whoami', { token: t.access_token });
        assert.equal(who.status, 401);
        assert.equal(who.body.errcode, 'M_UNKNOWN_TOKEN');
      }
      const login = await server.api.post('/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'goner' }, password: PW });
      assert.equal(login.status, 403);
      assert.equal(login.body.errcode, 'M_USER_DEACTIVATED');
      const avail = await server.api.get('/v3/register/available?username=goner');
      assert.equal(avail.body.errcode, 'M_USER_IN_USE');
      const taken = await server.api.post('/v3/register', { username: 'goner', password: PW });
      assert.equal(taken.body.errcode, 'M_USER_IN_USE');
      // The profile is gone.
      const profile = await server.api.get('/v3/profile/@goner:test.local/displayname');
      assert.equal(profile.status, 404);
    });

    it('profile: get and set displayname and avatar_url; only one\'s own; unknown users are 404', async () => {
      const a = await server.api.register('profiled', PW);
      const b = await server.api.register('stranger', PW);
      const me = '@profiled:test.local';
      // Registration gives the localpart as display name, as Synapse does.
      assert.deepEqual((await server.api.get(`/v3/profile/${me}`)).body, { displayname: 'profiled' });
      assert.equal((await server.api.get(`/v3/profile/${me}/avatar_url`)).status, 404);

      assert.equal((await server.api.put(`/v3/profile/${me}/displayname`, { displayname: 'Pro Filed' }, { token: a.access_token })).status, 200);
      assert.equal((await server.api.put(`/v3/profile/${me}/avatar_url`, { avatar_url: 'mxc://test.local/abc123' }, { token: a.access_token })).status, 200);
      assert.deepEqual((await server.api.get(`/v3/profile/${me}/displayname`)).body, { displayname: 'Pro Filed' });
      assert.deepEqual((await server.api.get(`/v3/profile/${encodeURIComponent(me)}/avatar_url`)).body, { avatar_url: 'mxc://test.local/abc123' });
      assert.deepEqual((await server.api.get(`/r0/profile/${me}`)).body, { displayname: 'Pro Filed', avatar_url: 'mxc://test.local/abc123' });

      const foreign = await server.api.put(`/v3/profile/${me}/displayname`, { displayname: 'Hijacked' }, { token: b.access_token });
      assert.equal(foreign.status, 403);
      assert.equal(foreign.body.errcode, 'M_FORBIDDEN');
      assert.equal((await server.api.get(`/v3/profile/${me}/displayname`)).body.displayname, 'Pro Filed');
      const anonymous = await server.api.put(`/v3/profile/${me}/displayname`, { displayname: 'Anon' });
      assert.equal(anonymous.status, 401);

      for (const path of ['/v3/profile/@nobody:test.local', '/v3/profile/@nobody:test.local/displayname', '/v3/profile/@x:other.example', '/v3/profile/not-a-user-id']) {
        const res = await server.api.get(path);
        assert.equal(res.status, 404, path);
        assert.equal(res.body.errcode, 'M_NOT_FOUND');
      }
      // Clearing a field removes it.
      assert.equal((await server.api.put(`/v3/profile/${me}/displayname`, { displayname: null }, { token: a.access_token })).status, 200);
      assert.equal((await server.api.get(`/v3/profile/${me}/displayname`)).status, 404);
      const badAvatar = await server.api.put(`/v3/profile/${me}/avatar_url`, { avatar_url: 'https://evil.example/x.png' }, { token: a.access_token });
      assert.equal(badAvatar.status, 400);
      assert.equal((await server.api.get(`/v3/profile/${me}/avatar_url`)).body.avatar_url, 'mxc://test.local/abc123');
    });

    it('capabilities say what really works', async () => {
      const a = await server.api.register('capable', PW);
      const res = await server.api.get<{ capabilities: Record<string, { enabled: boolean }> }>('/v3/capabilities', { token: a.access_token });
      assert.equal(res.status, 200);
      const caps = res.body.capabilities;
      assert.equal(caps['m.change_password']?.enabled, true);
      assert.equal(caps['m.set_displayname']?.enabled, true);
      assert.equal(caps['m.set_avatar_url']?.enabled, true);
      assert.equal(typeof caps['m.3pid_changes']?.enabled, 'boolean');
      assert.equal((await server.api.get('/v3/capabilities')).status, 401);
    });

    it('serves /versions and /.well-known/matrix/client', async () => {
      const versions = await server.api.get<{ versions: string[]; unstable_features: Record<string, boolean> }>('/versions');
      assert.equal(versions.status, 200);
      assert.ok(versions.body.versions.includes('r0.6.1'));
      assert.ok(versions.body.versions.includes('v1.1'));
      assert.equal(versions.body.unstable_features['m.require_identity_server'], false);
      assert.equal(versions.body.unstable_features['m.separate_add_and_bind'], true);
      const wk = await server.api.get<{ 'm.homeserver': { base_url: string } }>('/.well-known/matrix/client');
      assert.equal(wk.status, 200);
      assert.equal(wk.body['m.homeserver'].base_url, server.url);
      assert.equal(wk.headers.get('access-control-allow-origin'), '*');
    });
  });
}

for (const engine of HTTP_ENGINES) {
  describe(`password policy and disabled passwords (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine, {
        password_config: {
          argon2: { memory_cost: 1024, time_cost: 1, parallelism: 1 },
          policy: { enabled: true, minimum_length: 10, require_digit: true, require_symbol: true, require_lowercase: true, require_uppercase: true },
        },
      });
    });
    after(async () => server.close());

    it('refuses weak passwords with M_WEAK_PASSWORD on register and on change, and keeps the old one', async () => {
      for (const weak of ['Sh0rt!', 'nouppercase1!', 'NOLOWERCASE1!', 'NoDigitsHere!', 'NoSymbols123']) {
        const res = await server.api.post('/v3/register', { username: 'weakling', password: weak });
        assert.equal(res.status, 400, weak);
        assert.equal(res.body.errcode, 'M_WEAK_PASSWORD', weak);
      }
      const strong = 'Str0ng!Passw0rd';
      const reg = await server.api.register('weakling', strong);
      const start = await server.api.post('/v3/account/password', { new_password: 'weak' }, { token: reg.access_token });
      assert.equal(start.status, 400);
      assert.equal(start.body.errcode, 'M_WEAK_PASSWORD');
      await server.api.login('weakling', strong);
    });

    it('password_config.enabled: false turns off password login, registration, change and reset, and says so', async () => {
      const before = await server.api.register('passwordless', 'Str0ng!Passw0rd');
      const smtp = await SmtpSink.create();
      const off = await startTestServer(engine, { password_config: { enabled: false }, email: smtp.emailConfig() }, { database: server.config.database as unknown as Record<string, unknown> });
      try {
        const flows = await off.api.get<{ flows: { type: string }[] }>('/v3/login');
        assert.equal(flows.status, 200);
        assert.ok(!flows.body.flows.some((f) => f.type === 'm.login.password'), JSON.stringify(flows.body));
        const login = await off.api.post('/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'passwordless' }, password: 'Str0ng!Passw0rd' });
        assert.equal(login.status, 400);
        assert.equal(login.body.errcode, 'M_UNKNOWN');
        const register = await off.api.post('/v3/register', { username: 'newcomer', password: 'Str0ng!Passw0rd' });
        assert.equal(register.status, 403);
        assert.equal(register.body.errcode, 'M_FORBIDDEN');
        const change = await off.api.post('/v3/account/password', { new_password: 'An0ther!Passw0rd' }, { token: before.access_token });
        assert.equal(change.status, 403);
        assert.equal(change.body.errcode, 'M_FORBIDDEN');
        const reset = await off.api.post('/v3/account/password/email/requestToken', { client_secret: 'cs', email: 'someone@example.org', send_attempt: 1 });
        assert.equal(reset.status, 403);
        assert.equal(reset.body.errcode, 'M_FORBIDDEN');
        const caps = await off.api.get<{ capabilities: Record<string, { enabled: boolean }> }>('/v3/capabilities', { token: before.access_token });
        assert.equal(caps.body.capabilities['m.change_password']!.enabled, false);
        // Sessions made before stay valid; the password itself is unchanged for when passwords come back.
        assert.equal((await off.api.get('/v3/account/whoami', { token: before.access_token })).status, 200);
        await server.api.login('passwordless', 'Str0ng!Passw0rd');
      } finally {
        await off.close();
      }
    });
  });
}
