import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { outboxSettled } from './helpers/outbox.js';
import { ENGINES, HTTP_ENGINES, ManualClock, startTestServer, type TestServer } from './helpers/server.js';
import { clientSecret, nextSms, smsCode, startSmsEnv, type SmsEnv } from './helpers/sms.js';

type Body = Record<string, unknown>;
const REGISTER = '/v3/register/msisdn/requestToken';
const ADD = '/v3/account/3pid/msisdn/requestToken';
const SUBMIT = '/_matrix/client/unstable/registration/msisdn/submit_token';
const PW = 'sms-abuse-password-1';

for (const engine of HTTP_ENGINES) {
  describe(`phone number validation rules (${engine})`, () => {
    let env: SmsEnv;
    let clock: ManualClock;
    before(async () => {
      clock = new ManualClock();
      env = await startSmsEnv(
        engine,
        {
          sms: {
            validation_token_lifetime: '2m',
            code_length: 8,
            max_per_number_per_day: 3,
            allowed_country_codes: ['DE', 'FR', 'US', 'RU'],
            denied_country_codes: ['RU'],
          },
        },
        { clock },
      );
    });
    after(async () => env.close());

    const api = () => env.server.api;
    const request = (body: Body, path = REGISTER) => api().post(path, { send_attempt: 1, ...body });

    /** Requests a registration code for a fresh session; returns the sid, the secret and the code. */
    async function requestCode(country: string, phone: string, e164: string, cs = clientSecret(), attempt = 1) {
      const skip = env.twilio.messages.length;
      const res = await request({ client_secret: cs, country, phone_number: phone, send_attempt: attempt });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const sms = await nextSms(env.twilio, e164, skip);
      return { sid: res.body.sid as string, cs, code: smsCode(sms, 8), sms };
    }

    async function registerWith(username: string, sid: string, cs: string) {
      const first = await api().post('/v3/register', { username, password: PW });
      assert.equal(first.status, 401);
      return api().post('/v3/register', {
        username,
        password: PW,
        auth: { type: 'm.login.msisdn', session: first.body.session, threepid_creds: { sid, client_secret: cs } },
      });
    }

    it('treats national and international input of one number as one address: one session, one SMS', async () => {
      const cs = clientSecret();
      const skip = env.twilio.messages.length;
      const answers = [];
      for (const [country, phone] of [
        ['DE', '01512 4444555'],
        ['US', '+49 1512 4444555'],
        ['de', '+4915124444555'],
        ['FR', '+49 (0)1512-4444555'],
      ] as const) {
        const res = await request({ client_secret: cs, country, phone_number: phone });
        assert.equal(res.status, 200, `${country} ${phone}: ${JSON.stringify(res.body)}`);
        answers.push(res.body);
      }
      assert.equal(new Set(answers.map((a) => a.sid)).size, 1);
      for (const a of answers) {
        assert.equal(a.msisdn, '4915124444555');
        assert.equal(a.intl_fmt, '+49 1512 4444555');
        assert.equal(a.submit_url, `${env.server.url}${SUBMIT}`);
      }
      await nextSms(env.twilio, '+4915124444555', skip);
      await outboxSettled(env.server, ['sms']);
      assert.equal(env.twilio.messages.slice(skip).length, 1);
      // The SMS carries a code of sms.code_length digits.
      assert.match(env.twilio.messages[skip]!.body, /^\d{8} is your Matrix verification code\.$/);
    });

    it('refuses numbers that are not valid for their country with M_INVALID_PARAM, and sends nothing', async () => {
      const hits = env.twilio.hits;
      for (const [country, phone] of [
        ['DE', '123'],
        ['DE', 'not a number'],
        ['DE', '   '],
        ['XX', '01512 3456789'],
        ['US', '555-0100'],
        ['GB', '07700 900123'],
        ['DE', '+999 1234 5678'],
        ['DE', '0'.repeat(80)],
      ] as const) {
        const res = await request({ client_secret: clientSecret(), country, phone_number: phone });
        assert.equal(res.status, 400, `${country} ${phone}`);
        assert.equal(res.body.errcode, 'M_INVALID_PARAM', `${country} ${phone}: ${JSON.stringify(res.body)}`);
      }
      for (const [body, errcode] of [
        [{ client_secret: clientSecret(), phone_number: '01512 3456789' }, 'M_MISSING_PARAM'],
        [{ client_secret: clientSecret(), country: 'DE' }, 'M_MISSING_PARAM'],
        [{ client_secret: clientSecret(), country: 'DE', phone_number: 15123456789 }, 'M_BAD_JSON'],
        [{ client_secret: 'bad secret!', country: 'DE', phone_number: '01512 3456789' }, 'M_INVALID_PARAM'],
        [{ client_secret: clientSecret(), country: 'DE', phone_number: '01512 3456789', send_attempt: 'one' }, 'M_BAD_JSON'],
        [{ client_secret: clientSecret(), country: 'DE', phone_number: '01512 3456789', next_link: 'javascript:alert(1)' }, 'M_INVALID_PARAM'],
        [{ client_secret: clientSecret(), country: 'DE', phone_number: '01512 3456789', id_server: 'id.example.org' }, 'M_INVALID_PARAM'],
      ] as const) {
        const res = await request(body);
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal(res.body.errcode, errcode, `${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
      }
      await outboxSettled(env.server, ['sms']);
      assert.equal(env.twilio.hits, hits);
    });

    it('refuses numbers of denied or unlisted countries with M_THREEPID_DENIED, whatever country the client claims', async () => {
      const hits = env.twilio.hits;
      for (const [country, phone, why] of [
        ['RU', '912 345-67-89', 'denied (and denial beats the allow list)'],
        ['DE', '+7 912 345-67-89', 'denied, claimed to be German'],
        ['JP', '090-1234-5678', 'not on the allow list'],
        ['US', '+81 90-1234-5678', 'not on the allow list, claimed to be American'],
        ['DE', '+800 1234 5678', 'of no country, with an allow list'],
        ['DE', '0900 1 234567', 'German premium rate, on the allow list by country'],
        ['DE', '0800 1234567', 'German toll-free, on the allow list by country'],
        ['DE', '030 123456', 'German fixed line'],
      ] as const) {
        for (const path of [REGISTER, ADD]) {
          const res = await request({ client_secret: clientSecret(), country, phone_number: phone }, path);
          assert.equal(res.status, 403, `${why}: ${JSON.stringify(res.body)}`);
          assert.equal(res.body.errcode, 'M_THREEPID_DENIED', why);
        }
      }
      await outboxSettled(env.server, ['sms']);
      assert.equal(env.twilio.hits, hits);
    });

    it('caps SMS per number per day (sms.max_per_number_per_day), across sessions, until a day has passed', async () => {
      const cs = clientSecret();
      const e164 = '+4915155556666';
      const sids = new Set<string>();
      for (let attempt = 1; attempt <= 3; attempt++) sids.add((await requestCode('DE', '01515 5556666', e164, cs, attempt)).sid);
      assert.equal(sids.size, 1);
      const skip = env.twilio.messages.length;
      const over = await request({ client_secret: cs, country: 'DE', phone_number: '01515 5556666', send_attempt: 4 });
      assert.equal(over.status, 429);
      assert.equal(over.body.errcode, 'M_LIMIT_EXCEEDED');
      assert.ok((over.body.retry_after_ms as number) > 0);
      // A new session for the same number is capped too; another number is not.
      const fresh = await request({ client_secret: clientSecret(), country: 'DE', phone_number: '+49 1515 5556666' });
      assert.equal(fresh.status, 429);
      assert.equal(fresh.body.errcode, 'M_LIMIT_EXCEEDED');
      await requestCode('DE', '01515 5557777', '+4915155557777');
      await outboxSettled(env.server, ['sms']);
      assert.equal(env.twilio.messages.slice(skip).filter((m) => m.to === e164).length, 0);
      // A day later the number gets messages again, on the same session.
      clock.advance(86_400_000);
      const again = await requestCode('DE', '01515 5556666', e164, cs, 4);
      assert.ok(sids.has(again.sid));
      assert.equal((await api().post(SUBMIT, { sid: again.sid, client_secret: cs, token: again.code })).status, 200);
    });

    it('burns a session after five wrong codes: the right code no longer works', async () => {
      const { sid, cs, code } = await requestCode('DE', '01516 1111111', '+4915161111111');
      const wrong = code === '00000000' ? '11111111' : '00000000';
      for (let i = 0; i < 5; i++) {
        const res = await api().post(SUBMIT, { sid, client_secret: cs, token: wrong });
        assert.equal(res.status, 400);
        assert.equal(res.body.errcode, 'M_TOKEN_INCORRECT');
      }
      const right = await api().post(SUBMIT, { sid, client_secret: cs, token: code });
      assert.equal(right.status, 400);
      assert.equal(right.body.errcode, 'M_SESSION_EXPIRED');
      const reg = await registerWith('burnt', sid, cs);
      assert.equal(reg.status, 401);
      assert.equal(reg.body.errcode, 'M_THREEPID_AUTH_FAILED');
      // A new send_attempt starts a fresh session, whose code works.
      const next = await requestCode('DE', '01516 1111111', '+4915161111111', cs, 2);
      assert.notEqual(next.sid, sid);
      const ok = await api().post(SUBMIT, { sid: next.sid, client_secret: cs, token: next.code });
      assert.equal(ok.status, 200);
      assert.deepEqual(ok.body, { success: true });
    });

    it('uses a validated session once: no replay for a second account, and its code is dead afterwards', async () => {
      const { sid, cs, code } = await requestCode('FR', '06 11 22 33 44', '+33611223344');
      const wrongSecret = await api().post(SUBMIT, { sid, client_secret: clientSecret(), token: code });
      assert.equal(wrongSecret.body.errcode, 'M_TOKEN_INCORRECT');
      assert.equal((await api().post(SUBMIT, { sid, client_secret: cs, token: code })).status, 200);
      const reg = await registerWith('replayed', sid, cs);
      assert.equal(reg.status, 200, JSON.stringify(reg.body));
      const again = await registerWith('replayed2', sid, cs);
      assert.equal(again.status, 401);
      assert.equal(again.body.errcode, 'M_THREEPID_AUTH_FAILED');
      const late = await api().post(SUBMIT, { sid, client_secret: cs, token: code });
      assert.equal(late.status, 400);
      assert.equal(late.body.errcode, 'M_SESSION_EXPIRED');
    });

    it('refuses a session of another flow or another medium', async () => {
      const user = await api().register('flowmixer', PW);
      const cs = clientSecret();
      const skip = env.twilio.messages.length;
      const add = await request({ client_secret: cs, country: 'FR', phone_number: '06 22 33 44 55' }, ADD);
      assert.equal(add.status, 200);
      const code = smsCode(await nextSms(env.twilio, '+33622334455', skip), 8);
      // The registration submit_url (and the email one) do not take an add_threepid msisdn session.
      assert.equal((await api().post(SUBMIT, { sid: add.body.sid, client_secret: cs, token: code })).body.errcode, 'M_TOKEN_INCORRECT');
      const emailSubmit = await api().post('/_matrix/client/unstable/add_threepid/email/submit_token', { sid: add.body.sid, client_secret: cs, token: code });
      assert.equal(emailSubmit.status, 400);
      assert.equal((await api().post(new URL(add.body.submit_url as string).pathname, { sid: add.body.sid, client_secret: cs, token: code })).status, 200);
      const reg = await registerWith('flowmixer2', add.body.sid as string, cs);
      assert.equal(reg.status, 401);
      assert.equal(reg.body.errcode, 'M_THREEPID_AUTH_FAILED');
      // Its own operation takes it.
      const first = await api().post('/v3/account/3pid/add', { sid: add.body.sid, client_secret: cs }, { token: user.access_token });
      assert.equal(first.status, 401);
      const done = await api().post(
        '/v3/account/3pid/add',
        { sid: add.body.sid, client_secret: cs, auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: user.user_id }, password: PW, session: first.body.session } },
        { token: user.access_token },
      );
      assert.equal(done.status, 200, JSON.stringify(done.body));
      const list = await api().get('/v3/account/3pid', { token: user.access_token });
      assert.deepEqual(list.body.threepids, [
        {
          medium: 'msisdn',
          address: '33622334455',
          validated_at: (list.body.threepids as Body[])[0]!.validated_at,
          added_at: (list.body.threepids as Body[])[0]!.added_at,
        },
      ]);
    });

    it('expires codes after sms.validation_token_lifetime', async () => {
      const a = await requestCode('DE', '01517 1000001', '+4915171000001');
      clock.advance(119_000);
      assert.equal((await api().post(SUBMIT, { sid: a.sid, client_secret: a.cs, token: a.code })).status, 200);
      const b = await requestCode('DE', '01517 1000002', '+4915171000002');
      clock.advance(121_000);
      const late = await api().post(SUBMIT, { sid: b.sid, client_secret: b.cs, token: b.code });
      assert.equal(late.status, 400);
      assert.equal(late.body.errcode, 'M_SESSION_EXPIRED');
      // A higher send_attempt sends a fresh code on the same session.
      const c = await requestCode('DE', '01517 1000002', '+4915171000002', b.cs, 2);
      assert.equal(c.sid, b.sid);
      assert.notEqual(c.code, b.code);
      assert.equal((await api().post(SUBMIT, { sid: b.sid, client_secret: b.cs, token: b.code })).body.errcode, 'M_TOKEN_INCORRECT');
      assert.equal((await api().post(SUBMIT, { sid: c.sid, client_secret: b.cs, token: c.code })).status, 200);
    });

    it('sends one SMS for 20 concurrent identical requests, all answered with the same sid', async () => {
      const cs = clientSecret();
      const hits = env.twilio.hits;
      const skip = env.twilio.messages.length;
      const results = await Promise.all(
        Array.from({ length: 20 }, () => request({ client_secret: cs, country: 'US', phone_number: '(212) 555-0147' })),
      );
      for (const r of results) assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(new Set(results.map((r) => r.body.sid)).size, 1);
      await nextSms(env.twilio, '+12125550147', skip);
      await outboxSettled(env.server, ['sms']);
      assert.equal(env.twilio.hits, hits + 1);
      assert.equal(env.twilio.messages.slice(skip).length, 1);
    });
  });

  describe(`SMS pumping: only mobile numbers get a code (${engine})`, () => {
    let env: SmsEnv;
    before(async () => {
      env = await startSmsEnv(engine, { enable_msisdn_password_reset: true, request_token_inhibit_3pid_errors: true });
    });
    after(async () => env.close());
    const request = (body: Body, path = REGISTER) => env.server.api.post(path, { send_attempt: 1, ...body });

    it('refuses premium-rate, satellite, international-network, toll-free and fixed-line numbers with M_THREEPID_DENIED, sending nothing', async () => {
      const hits = env.twilio.hits;
      for (const [country, phone, why] of [
        ['GB', '+44 909 876 5432', 'UK premium rate'],
        ['DE', '+49 900 1 234567', 'German premium rate'],
        ['DE', '+881 6 1234 5678', 'Iridium satellite'],
        ['DE', '+881 2 3456 7890', 'Globalstar satellite'],
        ['DE', '+883 510 012 345', 'international network +883'],
        ['US', '+1 800 555 0100', 'US toll-free'],
        ['DE', '+49 800 1234567', 'German toll-free'],
        ['GB', '+44 800 123 4567', 'UK toll-free'],
        ['DE', '+800 1234 5678', 'international freephone'],
      ] as const) {
        for (const path of [REGISTER, ADD, '/v3/account/password/msisdn/requestToken']) {
          const res = await request({ client_secret: clientSecret(), country, phone_number: phone }, path);
          assert.equal(res.status, 403, `${why} at ${path}: ${JSON.stringify(res.body)}`);
          assert.equal(res.body.errcode, 'M_THREEPID_DENIED', `${why} at ${path}`);
        }
      }
      await outboxSettled(env.server, ['sms']);
      assert.equal(env.twilio.hits, hits);
    });

    it('still sends codes to mobile numbers in Germany, the UK and the US', async () => {
      for (const [country, phone, e164] of [
        ['DE', '01521 2345678', '+4915212345678'],
        ['GB', '07400 123456', '+447400123456'],
        ['US', '(202) 555-0123', '+12025550123'],
      ] as const) {
        const skip = env.twilio.messages.length;
        const res = await request({ client_secret: clientSecret(), country, phone_number: phone });
        assert.equal(res.status, 200, `${phone}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.msisdn, e164.slice(1));
        await nextSms(env.twilio, e164, skip);
      }
    });

  });
}

for (const engine of ENGINES) {
  // Both engines: code tries counted in the database across sessions.
  describe(`wrong SMS codes per number across sessions (${engine})`, () => {
    let env: SmsEnv;
    before(async () => {
      env = await startSmsEnv(engine, { max_code_attempts_per_address_per_day: 3, sms: { max_per_number_per_day: 100 } });
    });
    after(async () => env.close());

    async function session(phone: string, e164: string) {
      const cs = clientSecret();
      const skip = env.twilio.messages.length;
      const res = await env.server.api.post(REGISTER, { client_secret: cs, country: 'DE', phone_number: phone, send_attempt: 1 });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return { sid: res.body.sid as string, cs, code: smsCode(await nextSms(env.twilio, e164, skip)) };
    }
    const submit = (s: { sid: string; cs: string }, token: string) => env.server.api.post(SUBMIT, { sid: s.sid, client_secret: s.cs, token });
    const wrongFor = (code: string) => (code === '000000' ? '111111' : '000000');

    it('caps code tries per number over all its sessions; other numbers are unaffected', async () => {
      for (const tries of [2, 1]) {
        const s = await session('01517 8880001', '+4915178880001');
        for (let i = 0; i < tries; i++) assert.equal((await submit(s, wrongFor(s.code))).body.errcode, 'M_TOKEN_INCORRECT');
      }
      const victim = await session('01517 8880001', '+4915178880001');
      const refused = await submit(victim, victim.code);
      assert.equal(refused.status, 429);
      assert.equal(refused.body.errcode, 'M_LIMIT_EXCEEDED');
      const other = await session('01517 8880002', '+4915178880002');
      assert.equal((await submit(other, wrongFor(other.code))).status, 400);
      assert.equal((await submit(other, other.code)).status, 200);
    });
  });

  // Both engines: a cap shared by two processes.
  describe(`global SMS cap shared by two processes (${engine})`, () => {
    let env: SmsEnv;
    let second: TestServer;
    before(async () => {
      env = await startSmsEnv(engine, { sms: { max_per_hour: 4 } });
      second = await startTestServer(engine, { sms: env.twilio.smsConfig({ max_per_hour: 4 }), rc_3pid_validation: { per_second: 1000, burst_count: 1000 } }, { database: env.server.config.database });
    });
    after(async () => {
      await second.close();
      await env.close();
    });

    it('stops sending when sms.max_per_hour is used up, counting what both processes sent', async () => {
      const numbers = ['0151 30000001', '0151 30000002', '0151 30000003', '0151 30000004', '0151 30000005'];
      const servers = [env.server, second, env.server, second];
      for (const [i, server] of servers.entries()) {
        const res = await server.api.post(REGISTER, { client_secret: clientSecret(), country: 'DE', phone_number: numbers[i], send_attempt: 1 });
        assert.equal(res.status, 200, JSON.stringify(res.body));
      }
      await env.twilio.waitFor(4);
      for (const server of [env.server, second]) {
        const over = await server.api.post(REGISTER, { client_secret: clientSecret(), country: 'DE', phone_number: numbers[4], send_attempt: 1 });
        assert.equal(over.status, 429);
        assert.equal(over.body.errcode, 'M_LIMIT_EXCEEDED');
      }
      await outboxSettled(env.server, ['sms']);
      assert.equal(env.twilio.messages.length, 4);
      assert.deepEqual(env.twilio.messages.map((m) => m.to).sort(), ['+4915130000001', '+4915130000002', '+4915130000003', '+4915130000004']);
    });
  });
}

for (const engine of HTTP_ENGINES) {
  describe(`rc_3pid_validation on phone numbers (${engine})`, () => {
    let env: SmsEnv;
    before(async () => {
      env = await startSmsEnv(engine, { rc_3pid_validation: { per_second: 0.001, burst_count: 2 } });
    });
    after(async () => env.close());

    it('limits requestToken per client IP, and sends nothing over the limit', async () => {
      for (const phone of ['0151 50000001', '0151 50000002']) {
        const res = await env.server.api.post(REGISTER, { client_secret: clientSecret(), country: 'DE', phone_number: phone, send_attempt: 1 });
        assert.equal(res.status, 200);
      }
      await env.twilio.waitFor(2);
      const over = await env.server.api.post(REGISTER, { client_secret: clientSecret(), country: 'DE', phone_number: '0151 50000003', send_attempt: 1 });
      assert.equal(over.status, 429);
      assert.equal(over.body.errcode, 'M_LIMIT_EXCEEDED');
      assert.ok((over.body.retry_after_ms as number) > 0);
      await outboxSettled(env.server, ['sms']);
      assert.equal(env.twilio.hits, 2);
    });
  });
}

for (const engine of ENGINES) {
  // Both engines: the SMS caps are taken in a transaction with the session.
  describe(`SMS caps and login limits with request_token_inhibit_3pid_errors (${engine})`, () => {
    const RESET = '/v3/account/password/msisdn/requestToken';
    const BOUND = { country: 'DE', phone: '01517 7770001', e164: '+4915177770001' };
    let env: SmsEnv;
    let clock: ManualClock;
    before(async () => {
      clock = new ManualClock();
      env = await startSmsEnv(
        engine,
        {
          request_token_inhibit_3pid_errors: true,
          enable_msisdn_password_reset: true,
          sms: { max_per_number_per_day: 3, max_per_hour: 8 },
          rc_login: { address: { per_second: 1000, burst_count: 1000 }, account: { per_second: 0.001, burst_count: 3 }, failed_attempts: { per_second: 0.001, burst_count: 2 } },
        },
        { clock },
      );
      const skip = env.twilio.messages.length;
      const cs = clientSecret();
      const res = await env.server.api.post(REGISTER, { client_secret: cs, country: BOUND.country, phone_number: BOUND.phone, send_attempt: 1 });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const code = smsCode(await nextSms(env.twilio, BOUND.e164, skip));
      assert.equal((await env.server.api.post(SUBMIT, { sid: res.body.sid, client_secret: cs, token: code })).status, 200);
      const first = await env.server.api.post('/v3/register', { username: 'boundphone', password: PW });
      const reg = await env.server.api.post('/v3/register', {
        username: 'boundphone',
        password: PW,
        auth: { type: 'm.login.msisdn', session: first.body.session, threepid_creds: { sid: res.body.sid, client_secret: cs } },
      });
      assert.equal(reg.status, 200, JSON.stringify(reg.body));
      // Every bucket full again.
      clock.advance(86_400_000);
    });
    after(async () => env.close());

    const resetRequest = (phone: string) =>
      env.server.api.post(RESET, { client_secret: clientSecret(), country: 'DE', phone_number: phone, send_attempt: 1 });

    it('spends the per-number cap whether or not an account holds the number', async () => {
      const statuses = async (phone: string) => {
        const out: number[] = [];
        for (let i = 0; i < 5; i++) out.push((await resetRequest(phone)).status);
        return out;
      };
      const bound = await statuses(BOUND.phone);
      const unbound = await statuses('01517 7770002');
      assert.deepEqual(bound, [200, 200, 200, 429, 429]);
      assert.deepEqual(unbound, bound);
      clock.advance(86_400_000);
    });

    it('spends the hourly cap whether or not an account holds the number', async () => {
      // Eight reset requests for numbers nobody holds use up sms.max_per_hour, though no SMS goes out...
      for (let i = 0; i < 8; i++) assert.equal((await resetRequest(`01517 777100${i}`)).status, 200);
      // ...so the bound number, with its own daily cap untouched, is refused like any other.
      const bound = await resetRequest(BOUND.phone);
      assert.equal(bound.status, 429);
      assert.equal(bound.body.errcode, 'M_LIMIT_EXCEEDED');
      assert.equal((await resetRequest('01517 7771009')).status, 429);
      clock.advance(86_400_000);
    });

    it('answers logins by a known and by unknown phone numbers with the same statuses over the failed-attempts limit', async () => {
      const statuses = async (identifier: Body) => {
        const out: number[] = [];
        for (let i = 0; i < 5; i++) {
          const res = await env.server.api.post('/v3/login', { type: 'm.login.password', identifier, password: 'not the password' });
          out.push(res.status);
        }
        return out;
      };
      const known = await statuses({ type: 'm.id.phone', country: 'DE', phone: BOUND.phone });
      assert.deepEqual(known, [403, 403, 429, 429, 429]);
      // Each unknown number has buckets of its own, however many unknown numbers were tried before.
      for (const phone of ['01517 7772001', '01517 7772002', '01517 7772003']) {
        assert.deepEqual(await statuses({ type: 'm.id.phone', country: 'DE', phone }), known, phone);
      }
      assert.deepEqual(await statuses({ type: 'm.id.thirdparty', medium: 'msisdn', address: '4915177772004' }), known);
    });
  });
}

for (const engine of HTTP_ENGINES) {
  describe(`phone numbers when SMS is not configured (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine, { rc_3pid_validation: { per_second: 1000, burst_count: 1000 } });
    });
    after(async () => server.close());

    it('answers M_THREEPID_MEDIUM_NOT_SUPPORTED, or M_SERVER_NOT_TRUSTED for an untrusted id_server', async () => {
      const body = { client_secret: clientSecret(), country: 'DE', phone_number: '01512 3456789', send_attempt: 1 };
      for (const path of [REGISTER, ADD, '/v3/account/password/msisdn/requestToken']) {
        const res = await server.api.post(path, body);
        assert.equal(res.status, 400, path);
        assert.equal(res.body.errcode, 'M_THREEPID_MEDIUM_NOT_SUPPORTED', path);
      }
      const untrusted = await server.api.post(ADD, { ...body, id_server: 'id.example.org', id_access_token: 'abc' });
      assert.equal(untrusted.status, 400);
      assert.equal(untrusted.body.errcode, 'M_SERVER_NOT_TRUSTED');
      // m.login.msisdn is not offered at registration.
      const reg = await server.api.post('/v3/register', { username: 'nosms', password: PW });
      assert.ok(!(reg.body.flows as { stages: string[] }[]).some((f) => f.stages.includes('m.login.msisdn')));
    });
  });
}
