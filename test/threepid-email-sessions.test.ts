import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { outboxSettled } from './helpers/outbox.js';
import { ENGINES, ManualClock, startTestServer } from './helpers/server.js';
import { codeOf, followLink, formOf, linkOf, openLink, secret, startEmailEnv, type EmailEnv } from './helpers/threepid-email.js';
import { until } from './helpers/until.js';

const PW = 'session-test-password';
const EMAIL_STAGE = 'm.login.email.identity';
const RESET_SUBMIT = '/_matrix/client/unstable/password_reset/email/submit_token';
const REG_SUBMIT = '/_matrix/client/unstable/registration/email/submit_token';

for (const engine of ENGINES) {
  // Both engines: sessions raced by concurrent requests and by two processes on one database.
  describe(`email validation sessions (${engine})`, () => {
    let env: EmailEnv;
    const clock = new ManualClock();
    let n = 0;
    const api = () => env.server.api;

    /** An account holding `address`, made through the email registration flow. */
    async function account(address: string): Promise<{ user_id: string; access_token: string }> {
      const cs = secret();
      const req = await api().post<{ sid: string }>('/v3/register/email/requestToken', { client_secret: cs, email: address, send_attempt: 1 });
      assert.equal(req.status, 200, JSON.stringify(req.body));
      const mail = await env.smtp.waitFor((m) => m.envelopeTo.includes(address));
      const sub = await api().post(REG_SUBMIT, { sid: req.body.sid, client_secret: cs, token: codeOf(mail) });
      assert.equal(sub.status, 200);
      const username = `user${n++}`;
      const first = await api().post('/v3/register', { username, password: PW });
      const done = await api().post<{ user_id: string; access_token: string }>('/v3/register', {
        username,
        password: PW,
        auth: { type: EMAIL_STAGE, session: first.body.session, threepid_creds: { sid: req.body.sid, client_secret: cs } },
      });
      assert.equal(done.status, 200, JSON.stringify(done.body));
      return done.body;
    }

    /** Starts a password reset for `address`; returns the session and its mail. */
    async function reset(address: string, cs = secret(), attempt = 1) {
      const before = env.smtp.to(address).length;
      const res = await api().post<{ sid: string; submit_url: string }>('/v3/account/password/email/requestToken', { client_secret: cs, email: address, send_attempt: attempt });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      await until(() => env.smtp.to(address).length > before, `a mail to ${address}`);
      const mail = env.smtp.to(address).at(-1)!;
      return { sid: res.body.sid, cs, mail, submitUrl: res.body.submit_url };
    }

    /** Tries a password reset with the session; returns the HTTP answer. */
    function useForReset(sid: string, cs: string, newPassword = 'new-password-x', session?: string) {
      return api().post('/v3/account/password', { new_password: newPassword, auth: { type: EMAIL_STAGE, session, threepid_creds: { sid, client_secret: cs } } });
    }

    /** Restarts Myelin, and waits until it answers (a request on a keep-alive socket of the old process fails). */
    async function restart() {
      await env.server.restart();
      await until(() => fetch(`${env.server.url}/_matrix/client/versions`).then((r) => r.ok, () => false), 'the restarted server to answer');
    }

    before(async () => {
      env = await startEmailEnv(engine, {}, { clock });
    });
    after(async () => env.close());

    it('a GET of the link, even twice, validates nothing; the POST from its page does', async () => {
      await account('getter@example.org');
      const s = await reset('getter@example.org');
      const link = linkOf(s.mail);
      for (let i = 0; i < 2; i++) {
        const page = await openLink(link);
        assert.equal(page.status, 200);
        assert.equal(page.headers.get('cache-control'), 'no-store');
        assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
        assert.equal(formOf(page.html, link).method, 'post');
      }
      assert.equal((await fetch(link, { method: 'HEAD' })).status, 200);
      const pending = await useForReset(s.sid, s.cs);
      assert.equal(pending.status, 401);
      assert.equal(pending.body.errcode, 'M_UNAUTHORIZED');
      const done = await followLink(link);
      assert.equal(done.status, 200);
      const ok = await useForReset(s.sid, s.cs, 'new-password-x', pending.body.session as string);
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
    });

    it('a used session cannot be replayed: not by the link, the code, nor a new UIA session', async () => {
      await account('replay@example.org');
      const s = await reset('replay@example.org');
      assert.equal((await api().post(RESET_SUBMIT, { sid: s.sid, client_secret: s.cs, token: codeOf(s.mail) })).status, 200);
      assert.equal((await useForReset(s.sid, s.cs)).status, 200);
      const again = await useForReset(s.sid, s.cs, 'another-password');
      assert.equal(again.status, 401);
      assert.equal(again.body.errcode, 'M_THREEPID_AUTH_FAILED');
      const code = await api().post(RESET_SUBMIT, { sid: s.sid, client_secret: s.cs, token: codeOf(s.mail) });
      assert.equal(code.status, 400);
      assert.equal(code.body.errcode, 'M_SESSION_EXPIRED');
      const page = await openLink(linkOf(s.mail));
      assert.equal(page.status, 400);
      assert.match(page.html, /expired, has already been used, or is not valid/);
      assert.doesNotMatch(page.html, /<form/i);
    });

    it('one validated session serves one operation even when several race for it', async () => {
      await account('once@example.org');
      const s = await reset('once@example.org');
      assert.equal((await api().post(RESET_SUBMIT, { sid: s.sid, client_secret: s.cs, token: codeOf(s.mail) })).status, 200);
      const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => useForReset(s.sid, s.cs, `racing-password-${i}`)));
      assert.equal(answers.filter((a) => a.status === 200).length, 1);
      assert.ok(answers.filter((a) => a.status !== 200).every((a) => a.status === 401 && a.body.errcode === 'M_THREEPID_AUTH_FAILED'));
    });

    it('link and code expire after validation_token_lifetime', async () => {
      await account('expiry@example.org');
      const s = await reset('expiry@example.org');
      clock.advance(3_600_000 + 1);
      const code = await api().post(RESET_SUBMIT, { sid: s.sid, client_secret: s.cs, token: codeOf(s.mail) });
      assert.equal(code.status, 400);
      assert.equal(code.body.errcode, 'M_SESSION_EXPIRED');
      assert.equal((await openLink(linkOf(s.mail))).status, 400);
      const uia = await useForReset(s.sid, s.cs);
      assert.equal(uia.status, 401);
      assert.equal(uia.body.errcode, 'M_THREEPID_AUTH_FAILED');
      // A new send_attempt brings a fresh link that works again.
      const fresh = await reset('expiry@example.org', s.cs, 2);
      assert.equal(fresh.sid, s.sid);
      assert.equal((await followLink(linkOf(fresh.mail))).status, 200);
    });

    it('a wrong client_secret validates nothing', async () => {
      await account('secret@example.org');
      const s = await reset('secret@example.org');
      const wrong = await api().post(RESET_SUBMIT, { sid: s.sid, client_secret: 'not-the-secret', token: codeOf(s.mail) });
      assert.equal(wrong.status, 400);
      assert.equal(wrong.body.errcode, 'M_TOKEN_INCORRECT');
      const tampered = new URL(linkOf(s.mail));
      tampered.searchParams.set('client_secret', 'not-the-secret');
      assert.equal((await openLink(tampered.href)).status, 400);
      const post = await fetch(tampered.href, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: tampered.searchParams.toString(), redirect: 'manual' });
      assert.equal(post.status, 400);
      assert.equal((await useForReset(s.sid, 'not-the-secret')).body.errcode, 'M_THREEPID_AUTH_FAILED');
      const pending = await useForReset(s.sid, s.cs);
      assert.equal(pending.body.errcode, 'M_UNAUTHORIZED');
      const bad = await api().post(RESET_SUBMIT, { sid: s.sid, client_secret: 'bad secret!', token: '123456' });
      assert.equal(bad.body.errcode, 'M_INVALID_PARAM');
    });

    it('five wrong codes burn the session, the right code and the link included', async () => {
      await account('burn@example.org');
      const s = await reset('burn@example.org');
      const right = codeOf(s.mail);
      const wrong = right === '000000' ? '111111' : '000000';
      for (let i = 0; i < 5; i++) {
        const res = await api().post(RESET_SUBMIT, { sid: s.sid, client_secret: s.cs, token: wrong });
        assert.equal(res.status, 400);
        assert.equal(res.body.errcode, 'M_TOKEN_INCORRECT');
      }
      const late = await api().post(RESET_SUBMIT, { sid: s.sid, client_secret: s.cs, token: right });
      assert.equal(late.body.errcode, 'M_SESSION_EXPIRED');
      assert.equal((await openLink(linkOf(s.mail))).status, 400);
      assert.equal((await useForReset(s.sid, s.cs)).body.errcode, 'M_THREEPID_AUTH_FAILED');
    });

    it('concurrent wrong guesses cannot exceed five tries', async () => {
      await account('burst@example.org');
      const s = await reset('burst@example.org');
      const right = codeOf(s.mail);
      const guesses = Array.from({ length: 30 }, (_, i) => String((Number(right) + 1 + i) % 1_000_000).padStart(6, '0'));
      const answers = await Promise.all(guesses.map((token) => api().post(RESET_SUBMIT, { sid: s.sid, client_secret: s.cs, token })));
      assert.equal(answers.filter((a) => a.body.errcode === 'M_TOKEN_INCORRECT').length, 5);
      assert.equal(answers.filter((a) => a.body.errcode === 'M_SESSION_EXPIRED').length, 25);
    });

    it('a session from one flow serves no other', async () => {
      const address = 'crossflow@example.org';
      const cs = secret();
      const req = await api().post<{ sid: string }>('/v3/register/email/requestToken', { client_secret: cs, email: address, send_attempt: 1 });
      const mail = await env.smtp.waitFor((m) => m.envelopeTo.includes(address));
      // The registration session's code at the password reset submit_url: not a session of that flow.
      const elsewhere = await api().post(RESET_SUBMIT, { sid: req.body.sid, client_secret: cs, token: codeOf(mail) });
      assert.equal(elsewhere.body.errcode, 'M_TOKEN_INCORRECT');
      const link = new URL(linkOf(mail));
      link.pathname = link.pathname.replace('/registration/', '/password_reset/');
      assert.equal((await openLink(link.href)).status, 400);
      assert.equal((await api().post(REG_SUBMIT, { sid: req.body.sid, client_secret: cs, token: codeOf(mail) })).status, 200);
      // Validated for registration; account 'crossflow' then exists with this address.
      const username = 'crossflow';
      const first = await api().post('/v3/register', { username, password: PW });
      const reg = await api().post<{ access_token: string }>('/v3/register', {
        username,
        password: PW,
        auth: { type: EMAIL_STAGE, session: first.body.session, threepid_creds: { sid: req.body.sid, client_secret: cs } },
      });
      assert.equal(reg.status, 200);
      // ...but a password reset or an add cannot use it.
      const cs2 = secret();
      const req2 = await api().post<{ sid: string }>('/v3/register/email/requestToken', { client_secret: cs2, email: 'fresh@example.org', send_attempt: 1 });
      const mail2 = await env.smtp.waitFor((m) => m.envelopeTo.includes('fresh@example.org'));
      assert.equal((await api().post(REG_SUBMIT, { sid: req2.body.sid, client_secret: cs2, token: codeOf(mail2) })).status, 200);
      assert.equal((await useForReset(req2.body.sid, cs2)).body.errcode, 'M_THREEPID_AUTH_FAILED');
      const add = await api().post('/v3/account/3pid/add', { sid: req2.body.sid, client_secret: cs2, auth: { type: 'm.login.password', password: PW, identifier: { type: 'm.id.user', user: username } } }, { token: reg.body.access_token });
      assert.equal(add.status, 403);
      assert.equal(add.body.errcode, 'M_THREEPID_AUTH_FAILED');
    });

    it('send_attempt: the same one sends nothing more, a higher one a fresh mail on the same sid', async () => {
      await account('resend@example.org');
      const s1 = await reset('resend@example.org');
      const count = env.smtp.to('resend@example.org').length;
      const same = await api().post<{ sid: string }>('/v3/account/password/email/requestToken', { client_secret: s1.cs, email: 'resend@example.org', send_attempt: 1 });
      assert.equal(same.body.sid, s1.sid);
      const lower = await api().post<{ sid: string }>('/v3/account/password/email/requestToken', { client_secret: s1.cs, email: 'RESEND@example.org', send_attempt: 0 });
      assert.equal(lower.body.sid, s1.sid);
      await outboxSettled(env.server, ['email']);
      assert.equal(env.smtp.to('resend@example.org').length, count);
      const s2 = await reset('resend@example.org', s1.cs, 2);
      assert.equal(s2.sid, s1.sid);
      assert.notEqual(linkOf(s2.mail), linkOf(s1.mail));
      // The old link is dead; the new one works.
      assert.equal((await openLink(linkOf(s1.mail))).status, 400);
      assert.equal((await followLink(linkOf(s2.mail))).status, 200);
    });

    it('20 concurrent identical requests make one session and one mail', async () => {
      await account('race@example.org');
      const cs = secret();
      const count = env.smtp.to('race@example.org').length;
      const answers = await Promise.all(
        Array.from({ length: 20 }, () => api().post<{ sid: string }>('/v3/account/password/email/requestToken', { client_secret: cs, email: 'race@example.org', send_attempt: 1 })),
      );
      assert.ok(answers.every((a) => a.status === 200));
      assert.equal(new Set(answers.map((a) => a.body.sid)).size, 1);
      await env.smtp.waitFor((m) => m.envelopeTo.includes('race@example.org') && env.smtp.to('race@example.org').length > count);
      await outboxSettled(env.server, ['email']);
      assert.equal(env.smtp.to('race@example.org').length, count + 1);
    });

    it('20 identical requests spread over two processes on one database: one session, one mail', async () => {
      await account('tworace@example.org');
      const second = await startTestServer(engine, { email: env.smtp.emailConfig(), rc_3pid_validation: { per_second: 1000, burst_count: 1000 } }, { clock, database: env.server.config.database as unknown as Record<string, unknown> });
      try {
        const cs = secret();
        const count = env.smtp.to('tworace@example.org').length;
        const answers = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            (i % 2 ? second.api : api()).post<{ sid: string }>('/v3/account/password/email/requestToken', { client_secret: cs, email: 'tworace@example.org', send_attempt: 1 }),
          ),
        );
        assert.ok(answers.every((a) => a.status === 200));
        assert.equal(new Set(answers.map((a) => a.body.sid)).size, 1);
        await until(() => env.smtp.to('tworace@example.org').length > count, 'the mail');
        await outboxSettled(env.server, ['email']);
        assert.equal(env.smtp.to('tworace@example.org').length, count + 1);
        // The code works at either process.
        const mail = env.smtp.to('tworace@example.org').at(-1)!;
        assert.equal((await second.api.post(RESET_SUBMIT, { sid: answers[0]!.body.sid, client_secret: cs, token: codeOf(mail) })).status, 200);
      } finally {
        await second.close();
      }
    });

    it('caps the mails one session sends', async () => {
      await account('cap@example.org');
      const cs = secret();
      const count = env.smtp.to('cap@example.org').length;
      for (let attempt = 1; attempt <= 10; attempt++) {
        const res = await api().post('/v3/account/password/email/requestToken', { client_secret: cs, email: 'cap@example.org', send_attempt: attempt });
        assert.equal(res.status, 200);
      }
      const over = await api().post('/v3/account/password/email/requestToken', { client_secret: cs, email: 'cap@example.org', send_attempt: 11 });
      assert.equal(over.status, 429);
      assert.equal(over.body.errcode, 'M_LIMIT_EXCEEDED');
      assert.ok((over.body.retry_after_ms as number) > 0);
      await until(() => env.smtp.to('cap@example.org').length >= count + 10, 'the mails of the ten sessions');
      await outboxSettled(env.server, ['email']);
      assert.equal(env.smtp.to('cap@example.org').length, count + 10);
    });

    it('after a session is used, a higher send_attempt starts a new session; legacy threepidCreds work', async () => {
      await account('again@example.org');
      const s = await reset('again@example.org');
      assert.equal((await api().post(RESET_SUBMIT, { sid: s.sid, client_secret: s.cs, token: codeOf(s.mail) })).status, 200);
      const first = await api().post('/v3/account/password', { new_password: 'legacy-creds-pw' });
      assert.equal(first.status, 401);
      const legacy = await api().post('/v3/account/password', { new_password: 'legacy-creds-pw', auth: { type: EMAIL_STAGE, session: first.body.session, threepidCreds: { sid: s.sid, client_secret: s.cs } } });
      assert.equal(legacy.status, 200, JSON.stringify(legacy.body));
      const same = await api().post<{ sid: string }>('/v3/account/password/email/requestToken', { client_secret: s.cs, email: 'again@example.org', send_attempt: 1 });
      assert.equal(same.body.sid, s.sid);
      const next = await reset('again@example.org', s.cs, 2);
      assert.notEqual(next.sid, s.sid);
      assert.equal((await followLink(linkOf(next.mail))).status, 200);
      assert.equal((await useForReset(next.sid, s.cs)).status, 200);
    });

    it('two registrations racing with one address: the database lets one have it', async () => {
      const address = 'tworeg@example.org';
      const sessions = [];
      for (let i = 0; i < 2; i++) {
        const cs = secret();
        const req = await api().post<{ sid: string }>('/v3/register/email/requestToken', { client_secret: cs, email: address, send_attempt: 1 });
        await until(() => env.smtp.to(address).length > i, `mail ${i + 1}`);
        const mail = env.smtp.to(address).at(-1)!;
        assert.equal((await api().post(REG_SUBMIT, { sid: req.body.sid, client_secret: cs, token: codeOf(mail) })).status, 200);
        sessions.push({ sid: req.body.sid, cs, username: `racer${i}` });
      }
      const answers = await Promise.all(
        sessions.map(async (s) => {
          const first = await api().post('/v3/register', { username: s.username, password: PW });
          return api().post('/v3/register', { username: s.username, password: PW, auth: { type: EMAIL_STAGE, session: first.body.session, threepid_creds: { sid: s.sid, client_secret: s.cs } } });
        }),
      );
      assert.deepEqual(answers.map((a) => a.status).sort(), [200, 400]);
      assert.equal(answers.find((a) => a.status === 400)!.body.errcode, 'M_THREEPID_IN_USE');
    });

    it('the mail follows Accept-Language; a link with missing parts gets the failure page', async () => {
      const cs = secret();
      const res = await api().post('/v3/register/email/requestToken', { client_secret: cs, email: 'french@example.org', send_attempt: 1 }, { headers: { 'accept-language': 'fr-FR, fr;q=0.9, en;q=0.5' } });
      assert.equal(res.status, 200);
      const mail = await env.smtp.waitFor((m) => m.envelopeTo.includes('french@example.org'));
      assert.match(mail.subject, /Confirmez votre adresse/);
      assert.match(mail.text, /Confirmez votre adresse/);
      await api().post('/v3/register/email/requestToken', { client_secret: secret(), email: 'english@example.org', send_attempt: 1 }, { headers: { 'accept-language': 'de' } });
      const english = await env.smtp.waitFor((m) => m.envelopeTo.includes('english@example.org'));
      assert.match(english.text, /Confirm your email address/);
      const link = new URL(linkOf(mail));
      link.searchParams.delete('token');
      const page = await openLink(link.href);
      assert.equal(page.status, 400);
      assert.equal(page.headers.get('cache-control'), 'no-store');
    });

    it('a restart between the request and the validation does not break the flow', async () => {
      await account('restart@example.org');
      const cs = secret();
      const req = await api().post<{ sid: string }>('/v3/account/password/email/requestToken', { client_secret: cs, email: 'restart@example.org', send_attempt: 1 });
      await restart();
      const mail = await env.smtp.waitFor((m) => m.envelopeTo.includes('restart@example.org') && /password/i.test(m.subject));
      const pending = await useForReset(req.body.sid, cs);
      assert.equal(pending.status, 401);
      await restart();
      assert.equal((await followLink(linkOf(mail))).status, 200);
      await restart();
      const done = await useForReset(req.body.sid, cs, 'after-restart-pw', pending.body.session as string);
      assert.equal(done.status, 200);
      assert.equal((await api().post('/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.thirdparty', medium: 'email', address: 'restart@example.org' }, password: 'after-restart-pw' })).status, 200);
    });
  });

  // Both engines: code tries counted in the database across sessions.
  describe(`wrong codes per address across sessions (${engine})`, () => {
    let env: EmailEnv;
    const clock = new ManualClock();
    before(async () => {
      env = await startEmailEnv(engine, { max_code_attempts_per_address_per_day: 7 }, { clock });
    });
    after(async () => env.close());

    /** A registration session for `address` (each with its own client secret, as from another attacker). */
    async function session(address: string, cs = secret(), attempt = 1) {
      const before = env.smtp.to(address).length;
      const res = await env.server.api.post<{ sid: string }>('/v3/register/email/requestToken', { client_secret: cs, email: address, send_attempt: attempt });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      await until(() => env.smtp.to(address).length > before, `a mail to ${address}`);
      const mail = env.smtp.to(address).at(-1)!;
      return { sid: res.body.sid, cs, mail, code: codeOf(mail) };
    }
    const submit = (s: { sid: string; cs: string }, token: string) => env.server.api.post(REG_SUBMIT, { sid: s.sid, client_secret: s.cs, token });
    const wrongFor = (code: string) => (code === '000000' ? '111111' : '000000');

    it('caps code tries per address over all its sessions: then even the right code is 429, while the link still validates', async () => {
      const address = 'guessed@example.org';
      const statuses: string[] = [];
      // Two sessions, five and two wrong codes: seven tries, the whole daily budget.
      for (const tries of [5, 2]) {
        const s = await session(address);
        for (let i = 0; i < tries; i++) {
          const res = await submit(s, wrongFor(s.code));
          statuses.push(`${res.status} ${res.body.errcode}`);
        }
      }
      assert.deepEqual(statuses, Array(7).fill('400 M_TOKEN_INCORRECT'));
      const victim = await session(address);
      const refused = await submit(victim, victim.code);
      assert.equal(refused.status, 429);
      assert.equal(refused.body.errcode, 'M_LIMIT_EXCEEDED');
      assert.ok((refused.body.retry_after_ms as number) > 0);
      // A wrong code is refused the same way: nothing more is learnt.
      assert.equal((await submit(victim, wrongFor(victim.code))).status, 429);
      // The mailed link (192 bits, not guessable) still validates the session...
      assert.equal((await followLink(linkOf(victim.mail))).status, 200);
      // ...which then serves its registration.
      const first = await env.server.api.post('/v3/register', { username: 'guessed', password: PW });
      const reg = await env.server.api.post('/v3/register', {
        username: 'guessed',
        password: PW,
        auth: { type: EMAIL_STAGE, session: first.body.session, threepid_creds: { sid: victim.sid, client_secret: victim.cs } },
      });
      assert.equal(reg.status, 200, JSON.stringify(reg.body));
    });

    it('leaves other addresses alone, and refills over the day', async () => {
      const other = await session('bystander@example.org');
      assert.equal((await submit(other, wrongFor(other.code))).status, 400);
      assert.equal((await submit(other, other.code)).status, 200);
      // A seventh of a day gives the capped address one try back.
      const s = await session('refill@example.org');
      for (let i = 0; i < 5; i++) assert.equal((await submit(s, wrongFor(s.code))).status, 400);
      const t = await session('refill@example.org');
      for (let i = 0; i < 2; i++) assert.equal((await submit(t, wrongFor(t.code))).status, 400);
      assert.equal((await submit(t, t.code)).status, 429);
      clock.advance(Math.ceil(86_400_000 / 7));
      const u = await session('refill@example.org', secret());
      assert.equal((await submit(u, u.code)).status, 200);
    });
  });
}
