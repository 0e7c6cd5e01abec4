import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN_SECRET, registerWithSecret } from './helpers/admin.js';
import type { Api } from './helpers/api.js';
import { ENGINES, HTTP_ENGINES, ManualClock, startTestServer, type TestServer } from './helpers/server.js';
import { codeOf, secret, startEmailEnv } from './helpers/threepid-email.js';

const V1 = '/_synapse/admin/v1';
const TOKEN_STAGE = 'm.login.registration_token';
const VALIDITY = '/_matrix/client/v1/register/m.login.registration_token/validity';
type Json = Record<string, unknown>;
type Token = { token: string; uses_allowed: number | null; pending: number; completed: number; expiry_time: number | null };

interface Attempt {
  /** Where it stopped: 'token' (the token stage refused), 'done' (registered) or 'other'. */
  outcome: 'token' | 'done' | 'other';
  status: number;
  body: Json;
}

/** A registration through the token flow: open a session, pass the token stage, then m.login.dummy. */
async function registerWithToken(api: Api, username: string, token: string): Promise<Attempt> {
  const password = 'token-user-password';
  const first = await api.post('/v3/register', { username, password });
  if (first.status !== 401) return { outcome: 'other', status: first.status, body: first.body };
  const session = first.body.session as string;
  const stage = await api.post('/v3/register', { username, password, auth: { type: TOKEN_STAGE, token, session } });
  if (stage.status !== 401 || !(stage.body.completed as string[]).includes(TOKEN_STAGE)) return { outcome: stage.status === 401 ? 'token' : 'other', status: stage.status, body: stage.body };
  const done = await api.post('/v3/register', { username, password, auth: { type: 'm.login.dummy', session } });
  return { outcome: done.status === 200 ? 'done' : 'other', status: done.status, body: done.body };
}

for (const engine of HTTP_ENGINES) {
  describe(`registration tokens (${engine})`, () => {
    let server: TestServer;
    let admin: { access_token: string };
    const clock = new ManualClock();
    const asAdmin = () => ({ token: admin.access_token });
    const getToken = async (token: string) => (await server.api.get<Token>(`${V1}/registration_tokens/${token}`, asAdmin())).body;
    const valid = async (token: string) => (await server.api.get<{ valid: boolean }>(`${VALIDITY}?token=${encodeURIComponent(token)}`)).body.valid;

    before(async () => {
      server = await startTestServer(
        engine,
        { registration_shared_secret: ADMIN_SECRET, registration_requires_token: true, ui_auth_session_lifetime: '10m', rc_registration_token_validity: { per_second: 1000, burst_count: 1000 } },
        { clock },
      );
      admin = await registerWithSecret(server, 'root', 'root-password-1', true);
    });
    after(async () => server.close());

    it('creates, reads, updates, lists and deletes tokens in Synapse’s shapes', async () => {
      const random = await server.api.post<Token>(`${V1}/registration_tokens/new`, {}, asAdmin());
      assert.equal(random.status, 200);
      assert.match(random.body.token, /^[A-Za-z0-9._~-]{16}$/);
      assert.deepEqual({ ...random.body, token: '' }, { token: '', uses_allowed: null, pending: 0, completed: 0, expiry_time: null });
      const short = await server.api.post<Token>(`${V1}/registration_tokens/new`, { length: 5 }, asAdmin());
      assert.match(short.body.token, /^[A-Za-z0-9._~-]{5}$/);

      const expiry = clock.now() + 3_600_000;
      const named = await server.api.post<Token>(`${V1}/registration_tokens/new`, { token: 'crud-Tok.1~', uses_allowed: 3, expiry_time: expiry, length: 10 }, asAdmin());
      assert.deepEqual(named.body, { token: 'crud-Tok.1~', uses_allowed: 3, pending: 0, completed: 0, expiry_time: expiry });
      assert.deepEqual(await getToken('crud-Tok.1~'), named.body);

      const updated = await server.api.put<Token>(`${V1}/registration_tokens/crud-Tok.1~`, { uses_allowed: null }, asAdmin());
      assert.deepEqual(updated.body, { ...named.body, uses_allowed: null }, 'an omitted field is left as it is');
      const updated2 = await server.api.put<Token>(`${V1}/registration_tokens/crud-Tok.1~`, { expiry_time: null, uses_allowed: 0 }, asAdmin());
      assert.deepEqual(updated2.body, { ...named.body, uses_allowed: 0, expiry_time: null });

      const listed = await server.api.get<{ registration_tokens: Token[] }>(`${V1}/registration_tokens`, asAdmin());
      assert.deepEqual(listed.body.registration_tokens.map((t) => t.token).sort(), [random.body.token, short.body.token, 'crud-Tok.1~'].sort());
      const validOnes = await server.api.get<{ registration_tokens: Token[] }>(`${V1}/registration_tokens?valid=true`, asAdmin());
      assert.ok(!validOnes.body.registration_tokens.some((t) => t.token === 'crud-Tok.1~'), 'uses_allowed 0: not valid');
      const invalidOnes = await server.api.get<{ registration_tokens: Token[] }>(`${V1}/registration_tokens?valid=false`, asAdmin());
      assert.deepEqual(invalidOnes.body.registration_tokens.map((t) => t.token), ['crud-Tok.1~']);

      assert.deepEqual((await server.api.delete(`${V1}/registration_tokens/crud-Tok.1~`, undefined, asAdmin())).body, {});
      for (const [method, path] of [
        ['GET', `${V1}/registration_tokens/crud-Tok.1~`],
        ['PUT', `${V1}/registration_tokens/crud-Tok.1~`],
        ['DELETE', `${V1}/registration_tokens/crud-Tok.1~`],
      ] as const) {
        const res = await server.api.request(method, path, method === 'PUT' ? { uses_allowed: 1 } : undefined, asAdmin());
        assert.equal(res.status, 404, `${method} ${path}`);
        assert.equal(res.body.errcode, 'M_NOT_FOUND');
      }
    });

    it('refuses bad token requests with a clear error and changes nothing', async () => {
      await server.api.post(`${V1}/registration_tokens/new`, { token: 'keepme', uses_allowed: 2 }, asAdmin());
      const count = async () => (await server.api.get<{ registration_tokens: Token[] }>(`${V1}/registration_tokens`, asAdmin())).body.registration_tokens.length;
      const before = await count();
      for (const [body, errcode] of [
        [{ token: 'keepme' }, 'M_INVALID_PARAM'],
        [{ token: 'has space' }, 'M_INVALID_PARAM'],
        [{ token: 'x'.repeat(65) }, 'M_INVALID_PARAM'],
        [{ token: '' }, 'M_INVALID_PARAM'],
        [{ length: 0 }, 'M_INVALID_PARAM'],
        [{ length: 65 }, 'M_INVALID_PARAM'],
        [{ length: 'long' }, 'M_BAD_JSON'],
        [{ uses_allowed: -1 }, 'M_INVALID_PARAM'],
        [{ uses_allowed: 1.5 }, 'M_BAD_JSON'],
        [{ expiry_time: clock.now() - 1000 }, 'M_INVALID_PARAM'],
        [{ expiry_time: 'tomorrow' }, 'M_BAD_JSON'],
      ] as const) {
        const res = await server.api.post(`${V1}/registration_tokens/new`, body, asAdmin());
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal(res.body.errcode, errcode, JSON.stringify(body));
      }
      for (const body of [{ uses_allowed: -2 }, { expiry_time: clock.now() - 1 }, { uses_allowed: 'many' }]) {
        const res = await server.api.put(`${V1}/registration_tokens/keepme`, body, asAdmin());
        assert.equal(res.status, 400, JSON.stringify(body));
      }
      assert.equal((await server.api.get(`${V1}/registration_tokens?valid=perhaps`, asAdmin())).status, 400);
      assert.equal(await count(), before);
      assert.deepEqual(await getToken('keepme'), { token: 'keepme', uses_allowed: 2, pending: 0, completed: 0, expiry_time: null });
    });

    it('answers the validity check, and refuses a check without a token', async () => {
      await server.api.post(`${V1}/registration_tokens/new`, { token: 'checkme', expiry_time: clock.now() + 60_000 }, asAdmin());
      assert.equal(await valid('checkme'), true);
      assert.equal(await valid('CHECKME'), false, 'tokens are case-sensitive');
      assert.equal(await valid('unknown-token'), false);
      assert.equal(await valid('not a token!'), false);
      const missing = await server.api.get(VALIDITY);
      assert.equal(missing.status, 400);
      assert.equal(missing.body.errcode, 'M_MISSING_PARAM');
      clock.advance(61_000);
      assert.equal(await valid('checkme'), false, 'expired');
    });

    it('offers the token stage first in every registration flow', async () => {
      const res = await server.api.post('/v3/register', { username: 'flows', password: 'flows-password-1' });
      assert.equal(res.status, 401);
      assert.deepEqual(res.body.flows, [{ stages: [TOKEN_STAGE, 'm.login.dummy'] }]);
      const skip = await server.api.post('/v3/register', { username: 'flows', password: 'flows-password-1', auth: { type: 'm.login.dummy', session: res.body.session } });
      assert.equal(skip.status, 401, 'm.login.dummy alone does not complete a flow');
      assert.deepEqual(skip.body.completed, ['m.login.dummy']);
      assert.equal((await server.api.post('/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'flows' }, password: 'flows-password-1' })).status, 403);
    });

    it('counts a use as pending while the session is open, completed once registered; a used-up token is refused', async () => {
      await server.api.post(`${V1}/registration_tokens/new`, { token: 'once', uses_allowed: 1 }, asAdmin());
      const password = 'once-password-1';
      const first = await server.api.post('/v3/register', { username: 'onceuser', password });
      const session = first.body.session as string;

      const wrong = await server.api.post('/v3/register', { username: 'onceuser', password, auth: { type: TOKEN_STAGE, token: 'nope', session } });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.errcode, 'M_UNAUTHORIZED');
      assert.deepEqual(wrong.body.completed, []);
      const missing = await server.api.post('/v3/register', { username: 'onceuser', password, auth: { type: TOKEN_STAGE, session } });
      assert.equal(missing.status, 401);
      assert.equal(missing.body.errcode, 'M_MISSING_PARAM');

      const passed = await server.api.post('/v3/register', { username: 'onceuser', password, auth: { type: TOKEN_STAGE, token: 'once', session } });
      assert.equal(passed.status, 401);
      assert.deepEqual(passed.body.completed, [TOKEN_STAGE]);
      assert.deepEqual(await getToken('once'), { token: 'once', uses_allowed: 1, pending: 1, completed: 0, expiry_time: null });
      assert.equal(await valid('once'), false, 'the pending use counts against uses_allowed');
      const again = await server.api.post('/v3/register', { username: 'onceuser', password, auth: { type: TOKEN_STAGE, token: 'once', session } });
      assert.equal(again.status, 401, 'the same session may pass the stage again');
      assert.deepEqual(again.body.completed, [TOKEN_STAGE]);
      assert.equal((await getToken('once')).pending, 1, 'without a second pending use');

      const other = await registerWithToken(server.api, 'otheruser', 'once');
      assert.equal(other.outcome, 'token', 'another registration is refused the used token');
      assert.equal(other.body.errcode, 'M_UNAUTHORIZED');

      const done = await server.api.post<{ user_id: string }>('/v3/register', { username: 'onceuser', password, auth: { type: 'm.login.dummy', session } });
      assert.equal(done.status, 200, JSON.stringify(done.body));
      assert.equal(done.body.user_id, '@onceuser:test.local');
      assert.deepEqual(await getToken('once'), { token: 'once', uses_allowed: 1, pending: 0, completed: 1, expiry_time: null });
      assert.equal((await registerWithToken(server.api, 'thirduser', 'once')).outcome, 'token');

      // Raising uses_allowed makes it usable again.
      await server.api.put(`${V1}/registration_tokens/once`, { uses_allowed: 2 }, asAdmin());
      assert.equal((await registerWithToken(server.api, 'fourthuser', 'once')).outcome, 'done');
      assert.deepEqual(await getToken('once'), { token: 'once', uses_allowed: 2, pending: 0, completed: 2, expiry_time: null });
    });

    it('refuses an expired token, and releases a pending use when its session expires', async () => {
      await server.api.post(`${V1}/registration_tokens/new`, { token: 'soon', expiry_time: clock.now() + 1000 }, asAdmin());
      clock.advance(2000);
      assert.equal((await registerWithToken(server.api, 'lateuser', 'soon')).outcome, 'token');

      await server.api.post(`${V1}/registration_tokens/new`, { token: 'held', uses_allowed: 1 }, asAdmin());
      const password = 'held-password-1';
      const first = await server.api.post('/v3/register', { username: 'holder', password });
      const session = first.body.session as string;
      await server.api.post('/v3/register', { username: 'holder', password, auth: { type: TOKEN_STAGE, token: 'held', session } });
      assert.equal((await getToken('held')).pending, 1);
      assert.equal(await server.hs.services.admin.registrationTokens.releaseAbandoned(), 0, 'an open session keeps its use');
      assert.equal((await getToken('held')).pending, 1);

      clock.advance(11 * 60_000);
      assert.equal(await server.hs.services.admin.registrationTokens.releaseAbandoned(), 1);
      assert.deepEqual(await getToken('held'), { token: 'held', uses_allowed: 1, pending: 0, completed: 0, expiry_time: null });
      assert.equal(await valid('held'), true);
      const late = await server.api.post('/v3/register', { username: 'holder', password, auth: { type: 'm.login.dummy', session } });
      assert.equal(late.status, 400, 'the expired session cannot complete');
      assert.equal((await registerWithToken(server.api, 'newholder', 'held')).outcome, 'done');
      assert.deepEqual(await getToken('held'), { token: 'held', uses_allowed: 1, pending: 0, completed: 1, expiry_time: null });
    });

    it('a token deleted while a registration holds it: the registration completes, nothing is counted', async () => {
      await server.api.post(`${V1}/registration_tokens/new`, { token: 'vanishing' }, asAdmin());
      const password = 'vanish-password-1';
      const first = await server.api.post('/v3/register', { username: 'vanisher', password });
      const session = first.body.session as string;
      await server.api.post('/v3/register', { username: 'vanisher', password, auth: { type: TOKEN_STAGE, token: 'vanishing', session } });
      await server.api.delete(`${V1}/registration_tokens/vanishing`, undefined, asAdmin());
      const done = await server.api.post('/v3/register', { username: 'vanisher', password, auth: { type: 'm.login.dummy', session } });
      assert.equal(done.status, 200);
      assert.equal((await server.api.get(`${V1}/registration_tokens/vanishing`, asAdmin())).status, 404);
    });
  });

  describe(`registration tokens: the validity check's limits (${engine})`, () => {
    it('is rate limited per address, and 403 when registration is off', async () => {
      const server = await startTestServer(engine, { registration_requires_token: true, rc_registration_token_validity: { per_second: 0.001, burst_count: 3 } });
      const closed = await startTestServer(engine, { enable_registration: false, registration_requires_token: true });
      try {
        const statuses = [];
        for (let i = 0; i < 5; i++) statuses.push((await server.api.get(`${VALIDITY}?token=abc`)).status);
        assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
        const limited = await server.api.get(`${VALIDITY}?token=abc`);
        assert.equal(limited.body.errcode, 'M_LIMIT_EXCEEDED');
        const off = await closed.api.get(`${VALIDITY}?token=abc`);
        assert.equal(off.status, 403);
        assert.equal(off.body.errcode, 'M_FORBIDDEN');
      } finally {
        await server.close();
        await closed.close();
      }
    });

    it('starts with only a required token, and without one refuses open registration without verification', async () => {
      const ok = await startTestServer(engine, { enable_registration_without_verification: false, registration_requires_token: true });
      await ok.close();
      await assert.rejects(startTestServer(engine, { enable_registration_without_verification: false }), /no verification method/);
    });
  });

  describe(`registration tokens with registrations_require_3pid (${engine})`, () => {
    it('needs both the token and the verified email address', async () => {
      const env = await startEmailEnv(engine, {
        registration_shared_secret: ADMIN_SECRET,
        registration_requires_token: true,
        registrations_require_3pid: ['email'],
        enable_registration_without_verification: false,
        outbox: { poll_interval: 100 },
      });
      try {
        const { server, smtp } = env;
        const admin = await registerWithSecret(server, 'root', 'root-password-1', true);
        await server.api.post(`${V1}/registration_tokens/new`, { token: 'mailtok', uses_allowed: 1 }, { token: admin.access_token });
        const password = 'mail-password-1';
        const first = await server.api.post('/v3/register', { username: 'mailer', password });
        assert.equal(first.status, 401);
        assert.deepEqual(first.body.flows, [{ stages: [TOKEN_STAGE, 'm.login.email.identity'] }]);
        const session = first.body.session as string;
        const dummy = await server.api.post('/v3/register', { username: 'mailer', password, auth: { type: 'm.login.dummy', session } });
        assert.equal(dummy.status, 401);
        assert.equal(dummy.body.errcode, 'M_UNRECOGNIZED', 'm.login.dummy is not on offer');

        const tokenStage = await server.api.post('/v3/register', { username: 'mailer', password, auth: { type: TOKEN_STAGE, token: 'mailtok', session } });
        assert.deepEqual(tokenStage.body.completed, [TOKEN_STAGE]);

        const clientSecret = secret();
        const requested = await server.api.post<{ sid: string; submit_url: string }>('/v3/register/email/requestToken', { client_secret: clientSecret, email: 'mailer@example.org', send_attempt: 1 });
        assert.equal(requested.status, 200, JSON.stringify(requested.body));
        const mail = await smtp.waitFor((m) => m.envelopeTo.includes('mailer@example.org'));
        const submitted = await server.api.post(new URL(requested.body.submit_url).pathname, { sid: requested.body.sid, client_secret: clientSecret, token: codeOf(mail) });
        assert.equal(submitted.status, 200);
        const done = await server.api.post<{ user_id: string }>('/v3/register', {
          username: 'mailer',
          password,
          auth: { type: 'm.login.email.identity', threepid_creds: { sid: requested.body.sid, client_secret: clientSecret }, session },
        });
        assert.equal(done.status, 200, JSON.stringify(done.body));
        const details = await server.api.get<Json>(`${V1.replace('v1', 'v2')}/users/@mailer:test.local`, { token: admin.access_token });
        assert.deepEqual((details.body.threepids as Json[]).map((t) => t.address), ['mailer@example.org']);
        const used = await server.api.get<Token>(`${V1}/registration_tokens/mailtok`, { token: admin.access_token });
        assert.deepEqual({ pending: used.body.pending, completed: used.body.completed }, { pending: 0, completed: 1 });
      } finally {
        await env.close();
      }
    });
  });
}

// Concurrency is where the engines differ (PostgreSQL's row locks, SQLite's single writer): both run.
for (const engine of ENGINES) {
  describe(`registration tokens under concurrent registrations (${engine})`, () => {
    let server: TestServer;
    let admin: { access_token: string };
    before(async () => {
      server = await startTestServer(engine, { registration_shared_secret: ADMIN_SECRET, registration_requires_token: true });
      admin = await registerWithSecret(server, 'root', 'root-password-1', true);
    });
    after(async () => server.close());

    for (const [usesAllowed, contenders] of [
      [1, 2],
      [1, 8],
      [3, 10],
    ] as const) {
      it(`a token with uses_allowed ${usesAllowed} lets exactly ${usesAllowed} of ${contenders} concurrent registrations through`, async () => {
        const token = `race-${usesAllowed}-${contenders}`;
        await server.api.post(`${V1}/registration_tokens/new`, { token, uses_allowed: usesAllowed }, { token: admin.access_token });
        // Every session is opened first, so that the token stages race each other.
        const password = 'race-password-1';
        const names = Array.from({ length: contenders }, (_, i) => `racer${usesAllowed}x${contenders}n${i}`);
        const sessions = await Promise.all(names.map(async (username) => (await server.api.post('/v3/register', { username, password })).body.session as string));
        const stages = await Promise.all(names.map((username, i) => server.api.post('/v3/register', { username, password, auth: { type: TOKEN_STAGE, token, session: sessions[i] } })));
        const passed = stages.map((s, i) => ((s.body.completed as string[] | undefined)?.includes(TOKEN_STAGE) ? i : -1)).filter((i) => i >= 0);
        assert.equal(passed.length, usesAllowed, JSON.stringify(stages.map((s) => s.body.errcode ?? s.body.completed)));
        for (const [i, s] of stages.entries()) {
          if (!passed.includes(i)) {
            assert.equal(s.status, 401);
            assert.equal(s.body.errcode, 'M_UNAUTHORIZED');
          }
        }
        const done = await Promise.all(passed.map((i) => server.api.post('/v3/register', { username: names[i], password, auth: { type: 'm.login.dummy', session: sessions[i] } })));
        assert.deepEqual(done.map((d) => d.status), passed.map(() => 200));
        const after = await server.api.get<Token>(`${V1}/registration_tokens/${token}`, { token: admin.access_token });
        assert.deepEqual({ pending: after.body.pending, completed: after.body.completed }, { pending: 0, completed: usesAllowed });
        // And whole registrations racing end to end: none gets through once the token is used up.
        const late = await Promise.all([0, 1, 2].map((i) => registerWithToken(server.api, `late${usesAllowed}x${contenders}n${i}`, token)));
        assert.deepEqual(late.map((a) => a.outcome), ['token', 'token', 'token']);
      });
    }

    it('whole registrations racing end to end on a fresh token: exactly uses_allowed accounts are made', async () => {
      await server.api.post(`${V1}/registration_tokens/new`, { token: 'race-e2e', uses_allowed: 2 }, { token: admin.access_token });
      const attempts = await Promise.all(Array.from({ length: 7 }, (_, i) => registerWithToken(server.api, `e2eracer${i}`, 'race-e2e')));
      assert.equal(attempts.filter((a) => a.outcome === 'done').length, 2, JSON.stringify(attempts.map((a) => a.outcome)));
      assert.equal(attempts.filter((a) => a.outcome === 'token').length, 5);
      const after = await server.api.get<Token>(`${V1}/registration_tokens/race-e2e`, { token: admin.access_token });
      assert.deepEqual({ pending: after.body.pending, completed: after.body.completed }, { pending: 0, completed: 2 });
    });
  });
}
