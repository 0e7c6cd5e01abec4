import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startHomeserver } from '../src/homeserver.js';
import { Api } from './helpers/api.js';
import { capturedLog } from './helpers/log.js';
import { ENGINES, HTTP_ENGINES, ManualClock, freePort, freshDatabase, startTestServer, testConfig, type TestServer } from './helpers/server.js';

type Body = Record<string, unknown>;
const PW = 'pw-login-1234';

function passwordLogin(user: string, password = PW, extra: Body = {}): Body {
  return { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password, ...extra };
}

for (const engine of ENGINES) {
  // Both engines: tokens and devices in the database, read on every request.
  describe(`login (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine);
      await server.api.register('loginuser', PW);
    });
    after(async () => server.close());

    it('offers m.login.password on GET /login', async () => {
      const res = await server.api.get('/v3/login');
      assert.equal(res.status, 200);
      assert.deepEqual(res.body.flows, [{ type: 'm.login.password' }]);
    });

    for (const user of ['loginuser', 'LoginUser', '@loginuser:test.local', '@LOGINUSER:TEST.LOCAL', ' loginuser ']) {
      it(`logs in with m.id.user ${JSON.stringify(user)}`, async () => {
        const res = await server.api.post('/v3/login', passwordLogin(user));
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.equal(res.body.user_id, '@loginuser:test.local');
        assert.equal(res.body.home_server, 'test.local');
        const who = await server.api.get('/v3/account/whoami', { token: res.body.access_token as string });
        assert.equal(who.body.user_id, '@loginuser:test.local');
        assert.equal(who.body.device_id, res.body.device_id);
      });
    }

    it('logs in with the legacy top-level user field', async () => {
      const res = await server.api.post('/v3/login', { type: 'm.login.password', user: 'loginuser', password: PW });
      assert.equal(res.status, 200);
      assert.equal(res.body.user_id, '@loginuser:test.local');
      const full = await server.api.post('/r0/login', { type: 'm.login.password', user: '@loginuser:test.local', password: PW });
      assert.equal(full.status, 200);
    });

    it('answers a wrong password and an unknown user with the same 403 M_FORBIDDEN', async () => {
      const wrong = await server.api.post('/v3/login', passwordLogin('loginuser', 'not-the-password'));
      const nobody = await server.api.post('/v3/login', passwordLogin('nosuchuser'));
      const remote = await server.api.post('/v3/login', passwordLogin('@loginuser:elsewhere.example'));
      for (const res of [wrong, nobody, remote]) {
        assert.equal(res.status, 403);
        assert.deepEqual(res.body, wrong.body);
        assert.equal(res.body.errcode, 'M_FORBIDDEN');
      }
    });

    it('uses the given device_id and display name; a second login to one device replaces its token', async () => {
      const first = await server.api.post('/v3/login', passwordLogin('loginuser', PW, { device_id: 'LAPTOP', initial_device_display_name: 'Laptop' }));
      assert.equal(first.status, 200);
      assert.equal(first.body.device_id, 'LAPTOP');
      const second = await server.api.post('/v3/login', passwordLogin('loginuser', PW, { device_id: 'LAPTOP' }));
      assert.equal(second.body.device_id, 'LAPTOP');
      assert.equal((await server.api.get('/v3/account/whoami', { token: first.body.access_token as string })).status, 401);
      assert.equal((await server.api.get('/v3/account/whoami', { token: second.body.access_token as string })).status, 200);
      const device = await server.api.get('/v3/devices/LAPTOP', { token: second.body.access_token as string });
      assert.equal(device.body.display_name, 'Laptop');
    });

    it('rejects an unknown login type and an unknown identifier type', async () => {
      const type = await server.api.post('/v3/login', { type: 'm.login.token', token: 'abc' });
      assert.equal(type.status, 400);
      assert.equal(type.body.errcode, 'M_UNKNOWN');
      const ident = await server.api.post('/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.weird' }, password: PW });
      assert.equal(ident.status, 400);
    });

    it('reads the token from the header or the access_token query parameter', async () => {
      const login = await server.api.login('loginuser', PW);
      const query = await server.api.get(`/v3/account/whoami?access_token=${encodeURIComponent(login.access_token)}`);
      assert.equal(query.status, 200);
      assert.equal(query.body.user_id, '@loginuser:test.local');
      const missing = await server.api.get('/v3/account/whoami');
      assert.equal(missing.status, 401);
      assert.equal(missing.body.errcode, 'M_MISSING_TOKEN');
      const basic = await server.api.get('/v3/account/whoami', { headers: { authorization: 'Basic dXNlcjpwdw==' } });
      assert.equal(basic.status, 401);
      assert.equal(basic.body.errcode, 'M_MISSING_TOKEN');
      const bogus = await server.api.get('/v3/account/whoami', { token: 'myt_not-a-real-token' });
      assert.equal(bogus.status, 401);
      assert.equal(bogus.body.errcode, 'M_UNKNOWN_TOKEN');
      assert.equal(bogus.body.soft_logout, false);
    });

    it('logs out one device, then all of them', async () => {
      const a = await server.api.login('loginuser', PW);
      const b = await server.api.login('loginuser', PW);
      const c = await server.api.login('loginuser', PW);
      assert.equal((await server.api.post('/v3/logout', {}, { token: a.access_token })).status, 200);
      assert.equal((await server.api.get('/v3/account/whoami', { token: a.access_token })).body.errcode, 'M_UNKNOWN_TOKEN');
      const devices = await server.api.get<{ devices: Body[] }>('/v3/devices', { token: b.access_token });
      assert.ok(!devices.body.devices.some((d) => d.device_id === a.device_id), 'logout deletes the device');
      assert.equal((await server.api.get('/v3/account/whoami', { token: b.access_token })).status, 200);
      // Logging out again with the dead token is refused.
      assert.equal((await server.api.post('/v3/logout', {}, { token: a.access_token })).status, 401);
      const all = await server.api.post('/v3/logout/all', {}, { token: b.access_token });
      assert.equal(all.status, 200);
      for (const t of [b, c]) assert.equal((await server.api.get('/v3/account/whoami', { token: t.access_token })).status, 401);
      const fresh = await server.api.login('loginuser', PW);
      const after = await server.api.get<{ devices: Body[] }>('/v3/devices', { token: fresh.access_token });
      assert.deepEqual(
        after.body.devices.map((d) => d.device_id),
        [fresh.device_id],
      );
    });

    it('refuses a deactivated account with M_USER_DEACTIVATED, whatever the password', async () => {
      const reg = await server.api.register('leaver', PW);
      const start = await server.api.post('/v3/account/deactivate', {}, { token: reg.access_token });
      const done = await server.api.post(
        '/v3/account/deactivate',
        { auth: { type: 'm.login.password', session: start.body.session, identifier: { type: 'm.id.user', user: 'leaver' }, password: PW } },
        { token: reg.access_token },
      );
      assert.equal(done.status, 200);
      for (const password of [PW, 'something-else']) {
        const res = await server.api.post('/v3/login', passwordLogin('leaver', password));
        assert.equal(res.status, 403);
        assert.equal(res.body.errcode, 'M_USER_DEACTIVATED');
      }
    });
  });

  // Both engines: a refresh rotates tokens in one transaction.
  describe(`refresh tokens (${engine})`, () => {
    let server: TestServer;
    const clock = new ManualClock();
    before(async () => {
      server = await startTestServer(engine, { refreshable_access_token_lifetime: '5m', refresh_token_lifetime: '1h' }, { clock });
      await server.api.register('refresher', PW);
    });
    after(async () => server.close());

    async function loginWithRefresh() {
      const res = await server.api.post('/v3/login', passwordLogin('refresher', PW, { refresh_token: true }));
      assert.equal(res.status, 200);
      return res.body as { access_token: string; refresh_token: string; expires_in_ms: number; device_id: string };
    }

    it('gives a refresh token and expires_in_ms only when asked', async () => {
      const plain = await server.api.post('/v3/login', passwordLogin('refresher'));
      assert.equal(plain.body.refresh_token, undefined);
      assert.equal(plain.body.expires_in_ms, undefined);
      const login = await loginWithRefresh();
      assert.equal(login.expires_in_ms, 5 * 60_000);
      assert.match(login.refresh_token, /^\S{32,}$/);
      assert.notEqual(login.refresh_token, login.access_token);
    });

    it('rotates on POST /refresh: once the new access token is used, the old refresh token is M_UNKNOWN_TOKEN', async () => {
      const login = await loginWithRefresh();
      const res = await server.api.post('/v3/refresh', { refresh_token: login.refresh_token });
      assert.equal(res.status, 200);
      const next = res.body as { access_token: string; refresh_token: string; expires_in_ms: number };
      assert.notEqual(next.access_token, login.access_token);
      assert.notEqual(next.refresh_token, login.refresh_token);
      assert.equal(next.expires_in_ms, 5 * 60_000);
      const who = await server.api.get('/v3/account/whoami', { token: next.access_token });
      assert.equal(who.status, 200);
      assert.equal(who.body.device_id, login.device_id, 'refresh keeps the device');
      const reuse = await server.api.post('/v3/refresh', { refresh_token: login.refresh_token });
      assert.equal(reuse.status, 401);
      assert.equal(reuse.body.errcode, 'M_UNKNOWN_TOKEN');
      const again = await server.api.post('/v3/refresh', { refresh_token: next.refresh_token });
      assert.equal(again.status, 200);
      const unknownToken = await server.api.post('/v3/refresh', { refresh_token: 'myr_nothing' });
      assert.equal(unknownToken.status, 401);
      assert.equal(unknownToken.body.errcode, 'M_UNKNOWN_TOKEN');
    });

    it('the old refresh token works until the new pair is used (a lost answer can be retried)', async () => {
      const login = await loginWithRefresh();
      const lost = await server.api.post('/v3/refresh', { refresh_token: login.refresh_token });
      assert.equal(lost.status, 200);
      assert.equal((await server.api.get('/v3/account/whoami', { token: login.access_token })).status, 401, 'the old access token dies at once');
      const retry = await server.api.post('/v3/refresh', { refresh_token: login.refresh_token });
      assert.equal(retry.status, 200);
      // Using the new refresh token revokes the old one, and the pair whose answer was lost.
      const next = await server.api.post('/v3/refresh', { refresh_token: retry.body.refresh_token });
      assert.equal(next.status, 200);
      assert.equal((await server.api.post('/v3/refresh', { refresh_token: login.refresh_token })).status, 401);
      assert.equal((await server.api.post('/v3/refresh', { refresh_token: lost.body.refresh_token })).status, 401);
      assert.equal((await server.api.get('/v3/account/whoami', { token: lost.body.access_token as string })).status, 401);
      assert.equal((await server.api.get('/v3/account/whoami', { token: next.body.access_token as string })).status, 200);
    });

    it('concurrent refreshes with one token: the first pair used wins, the others die', async () => {
      const login = await loginWithRefresh();
      const results = await Promise.all(Array.from({ length: 5 }, () => server.api.post('/v3/refresh', { refresh_token: login.refresh_token })));
      assert.ok(results.every((r) => r.status === 200));
      const pairs = results.map((r) => r.body as { access_token: string; refresh_token: string });
      assert.equal(new Set(pairs.map((p) => p.refresh_token)).size, 5);
      assert.equal((await server.api.get('/v3/account/whoami', { token: pairs[2]!.access_token })).status, 200);
      for (const [i, pair] of pairs.entries()) {
        if (i === 2) continue;
        assert.equal((await server.api.post('/v3/refresh', { refresh_token: pair.refresh_token })).status, 401);
        assert.equal((await server.api.get('/v3/account/whoami', { token: pair.access_token })).status, 401);
      }
      assert.equal((await server.api.post('/v3/refresh', { refresh_token: login.refresh_token })).body.errcode, 'M_UNKNOWN_TOKEN');
      assert.equal((await server.api.post('/v3/refresh', { refresh_token: pairs[2]!.refresh_token })).status, 200);
    });

    it('an expired access token is M_UNKNOWN_TOKEN with soft_logout, and refresh still works', async () => {
      const login = await loginWithRefresh();
      clock.advance(5 * 60_000 + 1);
      const who = await server.api.get('/v3/account/whoami', { token: login.access_token });
      assert.equal(who.status, 401);
      assert.equal(who.body.errcode, 'M_UNKNOWN_TOKEN');
      assert.equal(who.body.soft_logout, true);
      const res = await server.api.post('/v3/refresh', { refresh_token: login.refresh_token });
      assert.equal(res.status, 200);
      assert.equal((await server.api.get('/v3/account/whoami', { token: res.body.access_token as string })).status, 200);
    });

    it('an expired refresh token is refused', async () => {
      const login = await loginWithRefresh();
      clock.advance(60 * 60_000 + 1);
      const res = await server.api.post('/v3/refresh', { refresh_token: login.refresh_token });
      assert.equal(res.status, 401);
      assert.equal(res.body.errcode, 'M_UNKNOWN_TOKEN');
    });

    it('a non-refreshable token does not expire; logout kills refresh tokens too', async () => {
      const plain = await server.api.login('refresher', PW);
      clock.advance(7 * 24 * 3_600_000);
      assert.equal((await server.api.get('/v3/account/whoami', { token: plain.access_token })).status, 200);
      const fresh = await loginWithRefresh();
      assert.equal((await server.api.post('/v3/logout', {}, { token: fresh.access_token })).status, 200);
      const res = await server.api.post('/v3/refresh', { refresh_token: fresh.refresh_token });
      assert.equal(res.status, 401);
      assert.equal(res.body.errcode, 'M_UNKNOWN_TOKEN');
    });
  });

  // Both engines: the rate-limit upsert is SQL of its own on each engine.
  describe(`login rate limits (${engine})`, () => {
    it('rc_login.address: 429 M_LIMIT_EXCEEDED with retry_after_ms and Retry-After', async () => {
      const server = await startTestServer(engine, { rc_login: { address: { per_second: 0.01, burst_count: 3 } } });
      try {
        await server.api.register('ratelimited', PW);
        for (let i = 0; i < 3; i++) assert.equal((await server.api.post('/v3/login', passwordLogin('ratelimited'))).status, 200);
        const res = await server.api.post('/v3/login', passwordLogin('ratelimited'));
        assert.equal(res.status, 429);
        assert.equal(res.body.errcode, 'M_LIMIT_EXCEEDED');
        assert.ok((res.body.retry_after_ms as number) > 0 && (res.body.retry_after_ms as number) <= 100_000);
        const header = Number(res.headers.get('retry-after'));
        assert.ok(header >= 1 && header <= 100, String(header));
        assert.match(res.headers.get('access-control-expose-headers') ?? '', /Retry-After/i);
      } finally {
        await server.close();
      }
    });

    it('rc_login.account limits one account across addresses; failed_attempts locks out after wrong passwords', async () => {
      const clock = new ManualClock();
      const server = await startTestServer(
        engine,
        {
          rc_login: {
            address: { per_second: 1000, burst_count: 1000 },
            account: { per_second: 0.01, burst_count: 2 },
            failed_attempts: { per_second: 0.01, burst_count: 2 },
          },
        },
        { clock },
      );
      try {
        await server.api.register('acct', PW);
        await server.api.register('guessme', PW);
        assert.equal((await server.api.post('/v3/login', passwordLogin('acct'))).status, 200);
        assert.equal((await server.api.post('/v3/login', passwordLogin('acct'))).status, 200);
        const limited = await server.api.post('/v3/login', passwordLogin('acct'));
        assert.equal(limited.status, 429);
        assert.equal(limited.body.errcode, 'M_LIMIT_EXCEEDED');

        // Two wrong guesses use up failed_attempts: then even the right password waits.
        clock.advance(1_000_000);
        for (let i = 0; i < 2; i++) assert.equal((await server.api.post('/v3/login', passwordLogin('guessme', 'wrong'))).status, 403);
        const locked = await server.api.post('/v3/login', passwordLogin('guessme'));
        assert.equal(locked.status, 429);
        assert.ok((locked.body.retry_after_ms as number) > 0);
        // Time heals.
        clock.advance(1_000_000);
        assert.equal((await server.api.post('/v3/login', passwordLogin('guessme'))).status, 200);
      } finally {
        await server.close();
      }
    });
  });
}

for (const engine of HTTP_ENGINES) {
  describe(`secrets stay out of the logs (${engine})`, () => {
    it('logs requests at trace level without passwords, access tokens or refresh tokens', async () => {
      const { logger, lines } = capturedLog('trace');
      const fresh = await freshDatabase(engine);
      const port = await freePort();
      const hs = await startHomeserver(testConfig(port, fresh.database, { log_level: 'trace' }), { logger });
      try {
        const api = new Api(`http://127.0.0.1:${port}`);
        const password = 'Sekrit-Passw0rd-xyz';
        const reg = await api.register('logged', password);
        const login = await api.post('/v3/login', passwordLogin('logged', password, { refresh_token: true }));
        assert.equal(login.status, 200, JSON.stringify(login.body));
        const token = login.body.access_token as string;
        assert.equal((await api.get(`/v3/account/whoami?access_token=${token}`)).status, 200);
        assert.equal((await api.post('/v3/login', passwordLogin('logged', 'Wrong-Passw0rd-abc'))).status, 403);
        const refreshed = await api.post('/v3/refresh', { refresh_token: login.body.refresh_token });
        assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
        const start = await api.post('/v3/account/password', { new_password: 'N3w-Sekrit-qrs' }, { token: reg.access_token });
        assert.equal(start.status, 401);
        const changed = await api.post(
          '/v3/account/password',
          { new_password: 'N3w-Sekrit-qrs', auth: { type: 'm.login.password', session: start.body.session, password } },
          { token: reg.access_token },
        );
        assert.equal(changed.status, 200, JSON.stringify(changed.body));
        const text = lines.join('');
        assert.ok(lines.length >= 6, 'requests are logged');
        assert.ok(text.includes('access_token=<redacted>'), 'the URL with the token was logged, redacted');
        for (const secret of [
          password,
          'Wrong-Passw0rd-abc',
          'N3w-Sekrit-qrs',
          reg.access_token,
          token,
          login.body.refresh_token as string,
          refreshed.body.access_token as string,
          refreshed.body.refresh_token as string,
        ]) {
          // Each secret really exists, so that its absence from the log means something.
          assert.ok(typeof secret === 'string' && secret.length >= 8, `a secret to look for: ${String(secret)}`);
          assert.ok(!text.includes(secret), `a secret reached the logs: ${secret.slice(0, 6)}...`);
        }
        // Every request above reached the log, each with its status.
        for (const status of [200, 401, 403]) assert.ok(lines.some((l) => l.includes(`"status":${status}`)), `a ${status} was logged`);
      } finally {
        await hs.close();
        await fresh.drop();
      }
    });
  });
}
