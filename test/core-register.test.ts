import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ENGINES, HTTP_ENGINES, ManualClock, startTestServer, type TestServer } from './helpers/server.js';

type Body = Record<string, unknown>;

for (const engine of ENGINES) {
  // Both engines: accounts and UIA sessions in the database, and two processes registering one name at once.
  describe(`register (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine);
    });
    after(async () => server.close());

    /** Starts a registration and returns its UIA session ID. */
    async function startSession(body: Body = {}): Promise<string> {
      const res = await server.api.post('/v3/register', body);
      assert.equal(res.status, 401, JSON.stringify(res.body));
      return res.body.session as string;
    }

    it('answers the first request with the UIA body: flows, params, session, completed', async () => {
      const res = await server.api.post('/v3/register', { username: 'shape', password: 'pw-shape-123' });
      assert.equal(res.status, 401);
      assert.deepEqual(res.body.flows, [{ stages: ['m.login.dummy'] }]);
      assert.deepEqual(res.body.params, {});
      assert.deepEqual(res.body.completed, []);
      assert.equal(typeof res.body.session, 'string');
      assert.ok((res.body.session as string).length >= 16);
      assert.equal(res.body.errcode, undefined);
      // Nothing was created yet.
      const available = await server.api.get('/v3/register/available?username=shape');
      assert.equal(available.status, 200);
      assert.equal(available.body.available, true);
    });

    it('registers through m.login.dummy, lowercasing the username, and the token works', async () => {
      const session = await startSession({ username: 'MixedCase', password: 'pw-mixed-123' });
      const res = await server.api.post('/v3/register', {
        username: 'MixedCase',
        password: 'pw-mixed-123',
        auth: { type: 'm.login.dummy', session },
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.user_id, '@mixedcase:test.local');
      assert.equal(typeof res.body.access_token, 'string');
      assert.equal(typeof res.body.device_id, 'string');
      assert.equal(res.body.refresh_token, undefined);
      const who = await server.api.get('/v3/account/whoami', { token: res.body.access_token as string });
      assert.equal(who.status, 200);
      assert.equal(who.body.user_id, '@mixedcase:test.local');
      assert.equal(who.body.device_id, res.body.device_id);
      // The password works on login, whatever the case of the name typed.
      const login = await server.api.login('MIXEDCASE', 'pw-mixed-123');
      assert.equal(login.user_id, '@mixedcase:test.local');
    });

    it('registers on the r0 prefix too', async () => {
      const first = await server.api.post('/r0/register', { username: 'oldclient', password: 'pw-old-123' });
      assert.equal(first.status, 401);
      const res = await server.api.post('/r0/register', {
        username: 'oldclient',
        password: 'pw-old-123',
        auth: { type: 'm.login.dummy', session: first.body.session },
      });
      assert.equal(res.status, 200);
      assert.equal(res.body.user_id, '@oldclient:test.local');
    });

    for (const [name, username] of [
      ['a space', 'has space'],
      ['a colon', 'a:b'],
      ['a non-ASCII letter', 'jürgen'],
      ['a leading underscore', '_bridge'],
      ['only digits', '123456'],
      ['an empty name', ''],
      ['a name too long for a user ID', 'a'.repeat(250)],
      ['an @ sign', '@alice'],
    ] as const) {
      it(`refuses ${name} with M_INVALID_USERNAME, on /register and /register/available`, async () => {
        const res = await server.api.post('/v3/register', { username, password: 'pw-invalid-123' });
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.equal(res.body.errcode, 'M_INVALID_USERNAME');
        if (username !== '') {
          const avail = await server.api.get(`/v3/register/available?username=${encodeURIComponent(username)}`);
          assert.equal(avail.status, 400);
          assert.equal(avail.body.errcode, 'M_INVALID_USERNAME');
        }
      });
    }

    it('accepts every character of the localpart grammar', async () => {
      const reg = await server.api.register('a.b_c=d-e/f+g9');
      assert.equal(reg.user_id, '@a.b_c=d-e/f+g9:test.local');
    });

    it('answers M_USER_IN_USE for a taken name, before and after UIA, in any case', async () => {
      await server.api.register('taken');
      const early = await server.api.post('/v3/register', { username: 'TAKEN', password: 'pw-taken-123' });
      assert.equal(early.status, 400);
      assert.equal(early.body.errcode, 'M_USER_IN_USE');
      const avail = await server.api.get('/v3/register/available?username=Taken');
      assert.equal(avail.status, 400);
      assert.equal(avail.body.errcode, 'M_USER_IN_USE');
      const free = await server.api.get('/v3/register/available?username=nottaken');
      assert.equal(free.status, 200);
      assert.deepEqual(free.body, { available: true });
      const missing = await server.api.get('/v3/register/available');
      assert.equal(missing.status, 400);
      assert.equal(missing.body.errcode, 'M_MISSING_PARAM');
    });

    it('honours inhibit_login, device_id, initial_device_display_name and refresh_token', async () => {
      const inhibited = await server.api.register('inhibited', 'pw-inhibit-123', { inhibit_login: true });
      assert.deepEqual(Object.keys(inhibited).sort(), ['user_id']);
      const login = await server.api.login('inhibited', 'pw-inhibit-123');
      const devices = await server.api.get<{ devices: Body[] }>('/v3/devices', { token: login.access_token });
      assert.equal(devices.body.devices.length, 1, 'inhibit_login must not create a device');

      const reg = await server.api.register('withdevice', 'pw-device-123', {
        device_id: 'MYPHONE',
        initial_device_display_name: 'Phone of Dev',
        refresh_token: true,
      });
      const body = reg as unknown as Body;
      assert.equal(body.device_id, 'MYPHONE');
      assert.equal(typeof body.refresh_token, 'string');
      assert.equal(typeof body.expires_in_ms, 'number');
      assert.ok((body.expires_in_ms as number) > 0);
      const device = await server.api.get('/v3/devices/MYPHONE', { token: reg.access_token });
      assert.equal(device.status, 200);
      assert.equal(device.body.display_name, 'Phone of Dev');
      const refreshed = await server.api.post('/v3/refresh', { refresh_token: body.refresh_token });
      assert.equal(refreshed.status, 200);
    });

    it('refuses an unknown UIA session and an auth type not on offer', async () => {
      const res = await server.api.post('/v3/register', {
        username: 'nosession',
        password: 'pw-nosession-1',
        auth: { type: 'm.login.dummy', session: 'no-such-session' },
      });
      assert.ok(res.status === 400 || res.status === 401, String(res.status));
      assert.equal(typeof res.body.errcode, 'string');
      const session = await startSession({ username: 'nosession', password: 'pw-nosession-1' });
      const wrongType = await server.api.post('/v3/register', {
        username: 'nosession',
        password: 'pw-nosession-1',
        auth: { type: 'm.login.password', session, password: 'x', identifier: { type: 'm.id.user', user: 'nosession' } },
      });
      assert.equal(wrongType.status, 401);
      assert.equal(wrongType.body.session, session);
      assert.deepEqual(wrongType.body.completed, []);
      assert.equal(typeof wrongType.body.errcode, 'string');
      const avail = await server.api.get('/v3/register/available?username=nosession');
      assert.equal(avail.body.available, true);
    });

    it('will not let one UIA session register two accounts', async () => {
      const session = await startSession({ username: 'once1', password: 'pw-once-1234' });
      const first = await server.api.post('/v3/register', { username: 'once1', password: 'pw-once-1234', auth: { type: 'm.login.dummy', session } });
      assert.equal(first.status, 200);
      const second = await server.api.post('/v3/register', { username: 'once2', password: 'pw-once-1234', auth: { type: 'm.login.dummy', session } });
      assert.notEqual(second.status, 200);
      assert.ok(second.status >= 400 && second.status < 500);
      const avail = await server.api.get('/v3/register/available?username=once2');
      assert.equal(avail.body.available, true);
    });

    it('registers only the username of the completing request when it differs from the first one', async () => {
      const session = await startSession({ username: 'first', password: 'pw-first-1234' });
      const res = await server.api.post('/v3/register', { username: 'second', password: 'pw-first-1234', auth: { type: 'm.login.dummy', session } });
      // As Synapse does, a completing request that carries parameters replaces the remembered ones
      // (uia-memory.test.ts); one session never makes two accounts.
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.user_id, '@second:test.local');
      assert.equal((await server.api.get('/v3/register/available?username=first')).body.available, true);
      await server.api.login('second', 'pw-first-1234');
    });

    it('a session begun for one operation cannot finish another', async () => {
      const alice = await server.api.register('crossop', 'pw-crossop-123');
      const started = await server.api.post('/v3/account/deactivate', {}, { token: alice.access_token });
      assert.equal(started.status, 401);
      const session = started.body.session as string;
      const other = await server.api.login('crossop', 'pw-crossop-123');
      const res = await server.api.post(
        '/v3/delete_devices',
        { devices: [other.device_id], auth: { type: 'm.login.password', session, identifier: { type: 'm.id.user', user: 'crossop' }, password: 'pw-crossop-123' } },
        { token: alice.access_token },
      );
      assert.equal(res.status, 403);
      assert.equal(res.body.errcode, 'M_FORBIDDEN');
      // The other device survived, and a register request cannot use that session either.
      assert.equal((await server.api.get('/v3/account/whoami', { token: other.access_token })).status, 200);
      const reg = await server.api.post('/v3/register', { username: 'crossop2', password: 'pw-crossop-123', auth: { type: 'm.login.dummy', session } });
      assert.equal(reg.status, 403);
      assert.equal((await server.api.get('/v3/register/available?username=crossop2')).body.available, true);
    });

    it('a session begun by one user cannot be finished by another', async () => {
      const a = await server.api.register('ownera', 'pw-owner-1234');
      const b = await server.api.register('ownerb', 'pw-owner-1234');
      const started = await server.api.post('/v3/delete_devices', { devices: [] }, { token: a.access_token });
      assert.equal(started.status, 401);
      const res = await server.api.post(
        '/v3/delete_devices',
        { devices: [b.device_id], auth: { type: 'm.login.password', session: started.body.session, password: 'pw-owner-1234' } },
        { token: b.access_token },
      );
      assert.equal(res.status, 403);
      assert.equal((await server.api.get('/v3/account/whoami', { token: b.access_token })).status, 200);
    });

    it('of 20 parallel registrations of one username exactly one succeeds', async () => {
      const sessions = await Promise.all(Array.from({ length: 20 }, () => startSession({ username: 'racer', password: 'pw-racer-1234' })));
      assert.equal(new Set(sessions).size, 20);
      const results = await Promise.all(
        sessions.map((session) => server.api.post('/v3/register', { username: 'racer', password: 'pw-racer-1234', auth: { type: 'm.login.dummy', session } })),
      );
      const ok = results.filter((r) => r.status === 200);
      const inUse = results.filter((r) => r.status === 400 && r.body.errcode === 'M_USER_IN_USE');
      assert.equal(ok.length, 1, JSON.stringify(results.map((r) => [r.status, r.body.errcode])));
      assert.equal(inUse.length, 19, JSON.stringify(results.map((r) => [r.status, r.body])));
      assert.equal(ok[0]!.body.user_id, '@racer:test.local');
      const who = await server.api.get('/v3/account/whoami', { token: ok[0]!.body.access_token as string });
      assert.equal(who.status, 200);
    });

    it('of several concurrent requests completing one session, exactly one registers', async () => {
      const session = await startSession({ username: 'samesession', password: 'pw-same-1234' });
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          server.api.post('/v3/register', { username: `samesession${i}`, password: 'pw-same-1234', auth: { type: 'm.login.dummy', session } }),
        ),
      );
      assert.equal(results.filter((r) => r.status === 200).length, 1, JSON.stringify(results.map((r) => [r.status, r.body.errcode])));
      for (const r of results) assert.ok(r.status === 200 || (r.status >= 400 && r.status < 500), String(r.status));
      const free = await Promise.all(Array.from({ length: 6 }, (_, i) => server.api.get(`/v3/register/available?username=samesession${i}`)));
      assert.equal(free.filter((r) => r.status === 200).length, 5);
    });

    it('keeps UIA sessions in the database: they survive a restart', async () => {
      const session = await startSession({ username: 'restarter', password: 'pw-restart-123' });
      await server.restart();
      // fetch may hold a keep-alive socket to the stopped process; an idempotent request flushes it.
      await server.api.get('/versions').catch(() => undefined);
      const res = await server.api.post('/v3/register', { username: 'restarter', password: 'pw-restart-123', auth: { type: 'm.login.dummy', session } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    });

    it('a session begun on one process can be finished on another sharing the database', async () => {
      const second = await startTestServer(engine, {}, { database: server.config.database as unknown as Record<string, unknown> });
      try {
        const session = await startSession({ username: 'twoprocs', password: 'pw-twoprocs-1' });
        const res = await second.api.post('/v3/register', { username: 'twoprocs', password: 'pw-twoprocs-1', auth: { type: 'm.login.dummy', session } });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        const who = await server.api.get('/v3/account/whoami', { token: res.body.access_token as string });
        assert.equal(who.body.user_id, '@twoprocs:test.local');
      } finally {
        await second.hs.close();
      }
    });

    it('refuses kind=guest while guest access is off, and an unknown kind', async () => {
      const res = await server.api.post('/v3/register?kind=guest', {});
      assert.equal(res.status, 403);
      assert.equal(res.body.errcode, 'M_GUEST_ACCESS_FORBIDDEN');
      const odd = await server.api.post('/v3/register?kind=robot', {});
      assert.equal(odd.status, 400);
    });

    it('ignores unknown body keys', async () => {
      const res = await server.api.post('/v3/register', { username: 'extras', password: 'pw-extras-123', bind_email: true, x_custom: { a: 1 } });
      assert.equal(res.status, 401);
    });
  });
}

for (const engine of HTTP_ENGINES) {
  describe(`register with guests allowed (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine, { allow_guest_access: true });
    });
    after(async () => server.close());

    it('registers guests with numeric IDs, flagged in whoami, without UIA', async () => {
      const one = await server.api.post('/v3/register?kind=guest', { initial_device_display_name: 'Guest device' });
      assert.equal(one.status, 200, JSON.stringify(one.body));
      assert.match(one.body.user_id as string, /^@\d+:test\.local$/);
      const two = await server.api.post('/v3/register?kind=guest', {});
      assert.equal(two.status, 200);
      assert.notEqual(two.body.user_id, one.body.user_id);
      const who = await server.api.get('/v3/account/whoami', { token: one.body.access_token as string });
      assert.equal(who.status, 200);
      assert.equal(who.body.is_guest, true);
      // A guest cannot take a password-protected action.
      const pw = await server.api.post('/v3/account/password', { new_password: 'pw-guest-1234' }, { token: one.body.access_token as string });
      assert.equal(pw.status, 403);
      assert.equal(pw.body.errcode, 'M_GUEST_ACCESS_FORBIDDEN');
    });

    it('gives parallel guest registrations distinct IDs', async () => {
      const results = await Promise.all(Array.from({ length: 10 }, () => server.api.post('/v3/register?kind=guest', {})));
      assert.deepEqual(
        results.map((r) => r.status),
        Array(10).fill(200),
        JSON.stringify(results.map((r) => r.body)),
      );
      assert.equal(new Set(results.map((r) => r.body.user_id)).size, 10);
    });

    it('a numeric username is refused even with guests on', async () => {
      const res = await server.api.post('/v3/register', { username: '42', password: 'pw-number-123' });
      assert.equal(res.status, 400);
      assert.equal(res.body.errcode, 'M_INVALID_USERNAME');
    });

    it('upgrades a guest to a full account with guest_access_token and its own username', async () => {
      const guest = (await server.api.post('/v3/register?kind=guest', {})).body as { user_id: string; access_token: string };
      const other = (await server.api.post('/v3/register?kind=guest', {})).body as { user_id: string; access_token: string };
      const localpart = guest.user_id.slice(1, guest.user_id.indexOf(':'));
      const full = await server.api.register('notaguest');
      const password = 'pw-upgraded-123';
      const attempt = (body: Record<string, unknown>) => server.api.post('/v3/register', { username: localpart, password, ...body });

      // Another guest's token, a full account's, a bad one, no username, another username: refused.
      const refusals: [Record<string, unknown>, number, string][] = [
        [{ guest_access_token: other.access_token, auth: { type: 'm.login.dummy' } }, 403, 'M_FORBIDDEN'],
        [{ guest_access_token: full.access_token, auth: { type: 'm.login.dummy' } }, 403, 'M_FORBIDDEN'],
        [{ guest_access_token: 'not-a-token', auth: { type: 'm.login.dummy' } }, 403, 'M_FORBIDDEN'],
        [{ guest_access_token: guest.access_token, username: undefined, auth: { type: 'm.login.dummy' } }, 400, 'M_MISSING_PARAM'],
        [{ guest_access_token: guest.access_token, username: 'someoneelse', auth: { type: 'm.login.dummy' } }, 403, 'M_FORBIDDEN'],
      ];
      for (const [body, status, errcode] of refusals) {
        const res = await attempt(body);
        assert.equal(res.status, status, JSON.stringify([body, res.body]));
        assert.equal(res.body.errcode, errcode, JSON.stringify(res.body));
      }

      // The ordinary flow: UIA first, then the same user, no longer a guest, with a new device.
      const first = await attempt({ guest_access_token: guest.access_token });
      assert.equal(first.status, 401, JSON.stringify(first.body));
      const done = await attempt({ guest_access_token: guest.access_token, auth: { type: 'm.login.dummy', session: first.body.session } });
      assert.equal(done.status, 200, JSON.stringify(done.body));
      assert.equal(done.body.user_id, guest.user_id);
      const who = await server.api.get('/v3/account/whoami', { token: done.body.access_token as string });
      assert.equal(who.body.user_id, guest.user_id);
      assert.equal(who.body.is_guest, undefined);
      const before = await server.api.get('/v3/account/whoami', { token: guest.access_token });
      assert.equal(before.status, 200, 'the guest token lives on');
      assert.equal(before.body.is_guest, undefined, 'and is a guest token no more');
      const login = await server.api.post('/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: localpart }, password });
      assert.equal(login.status, 200, JSON.stringify(login.body));
      // Upgraded once: the token is no guest's now.
      const again = await attempt({ guest_access_token: guest.access_token, auth: { type: 'm.login.dummy' } });
      assert.equal(again.status, 403, JSON.stringify(again.body));
    });
  });

  describe(`register when disabled (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine, { enable_registration: false });
    });
    after(async () => server.close());

    it('answers 403 M_FORBIDDEN on /register and /register/available', async () => {
      const res = await server.api.post('/v3/register', { username: 'closed', password: 'pw-closed-123' });
      assert.equal(res.status, 403);
      assert.equal(res.body.errcode, 'M_FORBIDDEN');
      const withAuth = await server.api.post('/v3/register', { username: 'closed', password: 'pw-closed-123', auth: { type: 'm.login.dummy', session: 'x' } });
      assert.equal(withAuth.status, 403);
      const avail = await server.api.get('/v3/register/available?username=closed');
      assert.equal(avail.status, 403);
      assert.equal(avail.body.errcode, 'M_FORBIDDEN');
      // Logins are still offered.
      const flows = await server.api.get('/v3/login');
      assert.deepEqual(flows.body.flows, [{ type: 'm.login.password' }]);
    });
  });
}

for (const engine of ENGINES) {
  // Both engines: the rate-limit upsert is SQL of its own on each engine.
  describe(`register rate limit (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine, {
        rc_registration: { per_second: 0.001, burst_count: 2 },
        rc_registration_availability: { per_second: 0.001, burst_count: 3 },
      });
    });
    after(async () => server.close());

    it('allows burst_count registrations per IP, then 429 M_LIMIT_EXCEEDED with Retry-After', async () => {
      await server.api.register('limited1');
      await server.api.register('limited2');
      const res = await server.api.post('/v3/register', { username: 'limited3', password: 'pw-limit-1234' });
      assert.equal(res.status, 429);
      assert.equal(res.body.errcode, 'M_LIMIT_EXCEEDED');
      assert.equal(typeof res.body.retry_after_ms, 'number');
      assert.ok(Number(res.headers.get('retry-after')) >= 1);
      // The limit held: no third account.
      assert.equal(await server.hs.services.store.users.countUsers(), 2);
    });

    it('limits GET /register/available per IP', async () => {
      for (let i = 0; i < 3; i++) assert.equal((await server.api.get(`/v3/register/available?username=probe${i}`)).status, 200);
      const res = await server.api.get('/v3/register/available?username=probe9');
      assert.equal(res.status, 429);
      assert.equal(res.body.errcode, 'M_LIMIT_EXCEEDED');
    });
  });

  // Both engines: expiry is decided by the stored times.
  describe(`UIA session expiry (${engine})`, () => {
    const clock = new ManualClock();
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine, { ui_auth_session_lifetime: '10m' }, { clock });
    });
    after(async () => server.close());

    it('an expired session is unknown', async () => {
      const first = await server.api.post('/v3/register', { username: 'slowpoke', password: 'pw-slow-1234' });
      assert.equal(first.status, 401);
      clock.advance(10 * 60_000 + 1);
      const res = await server.api.post('/v3/register', { username: 'slowpoke', password: 'pw-slow-1234', auth: { type: 'm.login.dummy', session: first.body.session } });
      assert.equal(res.status, 400);
      assert.equal(res.body.errcode, 'M_UNKNOWN');
      assert.equal((await server.api.get('/v3/register/available?username=slowpoke')).body.available, true);
      // A session used within its lifetime works.
      const again = await server.api.post('/v3/register', { username: 'slowpoke', password: 'pw-slow-1234' });
      clock.advance(9 * 60_000);
      const ok = await server.api.post('/v3/register', { username: 'slowpoke', password: 'pw-slow-1234', auth: { type: 'm.login.dummy', session: again.body.session } });
      assert.equal(ok.status, 200);
    });
  });
}
