import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { EmailRequest } from '../src/delivery/types.js';
import { openDb } from '../src/storage/db.js';
import { OutboxRepo } from '../src/storage/outbox.js';
import { afterAttempts, outboxRow, outboxSettled, stepOutbox } from './helpers/outbox.js';
import { ENGINES, ManualClock, freshDatabase, startTestServer, testConfig, type TestServer } from './helpers/server.js';
import { SmtpSink } from './helpers/smtp.js';
import { until } from './helpers/until.js';

const HOSTILE_APP = 'Evil <script>alert(1)</script> & Co';

function mail(to: string, vars: Record<string, unknown> = {}, extra: Partial<EmailRequest> = {}): EmailRequest {
  return { channel: 'email', to, template: 'registration', vars: { link: 'https://hs.example/validate?token=abc', code: '123456', ...vars }, ...extra };
}

function emailOverrides(smtp: SmtpSink, email: Record<string, unknown> = {}, outbox: Record<string, unknown> = {}) {
  return { email: smtp.emailConfig(email), outbox: { poll_interval: 100, ...outbox } };
}

for (const engine of ENGINES) {
  // Both engines: queueing in the caller's transaction, dedupe keys, claims and retries are SQL on each engine.
  describe(`delivery outbox (${engine})`, () => {
    let smtp: SmtpSink;
    let server: TestServer;
    before(async () => {
      smtp = await SmtpSink.started();
      server = await startTestServer(engine, emailOverrides(smtp, { app_name: HOSTILE_APP }));
    });
    after(async () => {
      await server.close();
      await smtp.stop();
    });

    it('sends a queued mail with text and HTML parts and the expected headers', async () => {
      const queued = await server.hs.services.outbox.enqueue(mail('alice@example.org'));
      assert.equal(queued, true);
      const m = await smtp.waitFor((x) => x.envelopeTo.includes('alice@example.org'));
      assert.deepEqual(m.envelopeTo, ['alice@example.org']);
      assert.equal(m.envelopeFrom, 'noreply@test.local');
      assert.match(m.header('message-id') ?? '', /^<[0-9a-f-]{36}@test\.local>$/);
      assert.ok(!Number.isNaN(Date.parse(m.header('date') ?? '')), 'Date header parses');
      assert.ok(Math.abs(Date.parse(m.header('date')!) - Date.now()) < 60_000);
      assert.equal(m.header('auto-submitted'), 'auto-generated');
      assert.equal(m.subject, '[test.local] Validate your email');
      assert.equal(m.parsed.from?.value[0]?.address, 'noreply@test.local');
      assert.equal(m.parsed.from?.value[0]?.name, HOSTILE_APP);
      assert.equal(m.parsed.to && !Array.isArray(m.parsed.to) ? m.parsed.to.value.length : -1, 1);
      assert.match(m.text, /https:\/\/hs\.example\/validate\?token=abc/);
      assert.match(m.text, /123456/);
      assert.match(m.html, /href="https:\/\/hs\.example\/validate\?token=abc"/);
      assert.match(m.html, /123456/);
    });

    it('escapes hostile variables in the HTML part, not in the text part', async () => {
      const evil = '"><script>alert(2)</script>';
      await server.hs.services.outbox.enqueue(mail('bob@example.org', { code: evil, server_name: '<img src=x onerror=alert(3)>' }));
      const m = await smtp.waitFor((x) => x.envelopeTo.includes('bob@example.org'));
      assert.doesNotMatch(m.html, /<script>/i);
      assert.doesNotMatch(m.html, /<img src=x/i);
      assert.match(m.html, /&lt;script&gt;alert\(2\)&lt;\/script&gt;/);
      assert.match(m.html, /Evil &lt;script&gt;alert\(1\)&lt;\/script&gt; &amp; Co/);
      assert.ok(m.text.includes(evil), 'the text part carries the value as is');
    });

    it('refuses recipients and values that could inject headers', async () => {
      const outbox = server.hs.services.outbox;
      for (const to of ['carol@example.org\r\nBcc: eve@evil.example', 'carol@example.org, eve@evil.example', 'Eve <eve@evil.example>', 'carol@example.org\nX: y']) {
        await assert.rejects(outbox.enqueue(mail(to)), /refusing to send/);
      }
      // A CR/LF in app_name or a subject never reaches a header: the config refuses it.
      const database = server.config.database as unknown as Record<string, unknown>;
      assert.throws(() => testConfig(1, database, emailOverrides(smtp, { app_name: 'A\r\nBcc: eve@evil.example' })), /email\.app_name/);
      assert.throws(() => testConfig(1, database, emailOverrides(smtp, { subjects: { email_validation: 'x\nBcc: eve@evil.example' } })), /email\.subjects/);
      assert.throws(() => testConfig(1, database, emailOverrides(smtp, { notif_from: 'X <a@b.c>\r\nBcc: eve@evil.example' })), /email\.notif_from/);
      await outboxSettled(server, ['email']);
      assert.equal(smtp.messages.filter((m) => m.envelopeTo.includes('eve@evil.example')).length, 0);
    });

    it('queues at most one message per dedupe key', async () => {
      const outbox = server.hs.services.outbox;
      const results = await Promise.all(Array.from({ length: 10 }, () => outbox.enqueue(mail('dave@example.org'), { dedupeKey: 'email:sid-dave:1' })));
      assert.equal(results.filter(Boolean).length, 1);
      assert.equal(await outbox.enqueue(mail('dave@example.org'), { dedupeKey: 'email:sid-dave:2' }), true);
      await smtp.waitFor((x) => x.envelopeTo.includes('dave@example.org') && smtp.to('dave@example.org').length >= 2);
      await outboxSettled(server, ['email']);
      assert.equal(smtp.to('dave@example.org').length, 2);
    });

    it('queues inside the caller transaction: nothing on rollback, the mail after commit', async () => {
      const { store, outbox } = server.hs.services;
      await assert.rejects(
        store.transaction(async (trx) => {
          assert.equal(await outbox.within(trx).enqueue(mail('erin@example.org'), { dedupeKey: 'email:erin' }), true);
          throw new Error('roll back');
        }),
        /roll back/,
      );
      assert.equal(await store.outbox.findByDedupeKey('email:erin'), undefined);
      await store.transaction(async (trx) => {
        assert.equal(await outbox.within(trx).enqueue(mail('erin@example.org'), { dedupeKey: 'email:erin' }), true);
        // A duplicate key inside a transaction answers false and leaves the transaction usable.
        assert.equal(await outbox.within(trx).enqueue(mail('erin@example.org'), { dedupeKey: 'email:erin' }), false);
        await trx.users.get('@nobody:test.local');
      });
      await smtp.waitFor((x) => x.envelopeTo.includes('erin@example.org'), 3000);
    });

    it('forgets the content of a sent message', async () => {
      const { store, outbox } = server.hs.services;
      await outbox.enqueue(mail('frank@example.org'), { dedupeKey: 'email:frank' });
      await smtp.waitFor((x) => x.envelopeTo.includes('frank@example.org'));
      let row = await store.outbox.findByDedupeKey('email:frank');
      await until(async () => (row = await store.outbox.findByDedupeKey('email:frank'))?.sent_ts !== null, 'frank\'s mail to be marked sent', 5000);
      assert.ok(row?.sent_ts, 'marked sent');
      assert.equal(row.payload, null);
      assert.equal(row.next_attempt_ts, null);
      assert.equal(row.attempts, 1);
    });

    it('leaves messages of channels this process cannot send to the processes that can', async () => {
      const { store, outbox } = server.hs.services;
      assert.equal(await store.outbox.insert({ id: 'sms-1', channel: 'sms', dedupeKey: 'sms:1', payload: '{"to":"33612345678","text":"x"}', now: Date.now() }), true);
      await assert.rejects(outbox.enqueue({ channel: 'sms', to: '33612345678', template: 'registration', vars: {} }), /not configured/);
      await outbox.enqueue(mail('after-sms@example.org'));
      await smtp.waitFor((x) => x.envelopeTo.includes('after-sms@example.org'));
      const row = await store.outbox.get('sms-1');
      assert.equal(row?.attempts, 0);
      assert.ok(row?.next_attempt_ts && row.payload, 'still pending, untouched');
    });

    it('gives up at once on a recipient the server refuses for good', async () => {
      const { store, outbox } = server.hs.services;
      smtp.rejectRecipients((a) => a === 'ghost@example.org');
      try {
        await outbox.enqueue(mail('ghost@example.org'), { dedupeKey: 'email:ghost' });
        let row = await store.outbox.findByDedupeKey('email:ghost');
        await until(async () => Boolean((row = await store.outbox.findByDedupeKey('email:ghost'))?.dead_ts), 'the ghost mail to be marked dead', 5000);
        assert.ok(row?.dead_ts, 'marked dead');
        assert.equal(row.payload, null);
        assert.match(row.last_error ?? '', /550/);
        assert.doesNotMatch(row.last_error ?? '', /123456|token=abc/);
      } finally {
        smtp.rejectRecipients(() => false);
      }
    });
  });

  describe(`outbox claims (${engine})`, () => {
    it('hands each due message to exactly one of several concurrent claimers', async () => {
      const fresh = await freshDatabase(engine);
      const config = testConfig(1, fresh.database);
      const dbs = [await openDb(config.database)];
      dbs.push(await openDb(config.database), await openDb(config.database));
      try {
        const repos = dbs.map((db) => new OutboxRepo(db.kysely, db.engine));
        const now = Date.now();
        for (let i = 0; i < 200; i++) await repos[0]!.insert({ id: `m${i}`, channel: 'email', payload: '{}', now: now - 1000 });
        const claimedBy = await Promise.all(
          repos.map(async (repo) => {
            const mine: string[] = [];
            for (;;) {
              const batch = await repo.claimDue(Date.now(), 60_000, 7, ['email']);
              if (batch.length === 0) return mine;
              mine.push(...batch.map((m) => m.id));
            }
          }),
        );
        const all = claimedBy.flat();
        assert.equal(all.length, 200, 'every message claimed once');
        assert.equal(new Set(all).size, 200, 'no message claimed twice');
        // A claimed message is not due again until its lease ends; then it is, once.
        assert.equal((await repos[1]!.claimDue(Date.now(), 60_000, 500, ['email'])).length, 0);
        assert.equal((await repos[1]!.claimDue(Date.now() + 61_000, 60_000, 500, ['email'])).length, 200);
        assert.equal((await repos[2]!.claimDue(Date.now() + 61_000, 60_000, 500, ['email'])).length, 0);
      } finally {
        await Promise.all(dbs.map((db) => db.close()));
        await fresh.drop();
      }
    });
  });

  describe(`delivery retries (${engine})`, () => {
    it('delivers a mail queued while the SMTP server is down at the next try once it comes up, dated when queued', async () => {
      const clock = new ManualClock();
      const smtp = await SmtpSink.create();
      const server = await startTestServer(engine, emailOverrides(smtp), { outboxClock: clock });
      try {
        const queuedAt = clock.now();
        assert.equal(await server.hs.services.outbox.enqueue(mail('late@example.org'), { dedupeKey: 'email:late' }), true);
        const failed = await afterAttempts(server, 'email:late', 1);
        assert.ok(failed.last_error && failed.next_attempt_ts! > clock.now(), 'kept for a later try');
        assert.equal(smtp.messages.length, 0);
        await smtp.start();
        stepOutbox(clock, 10 * 60_000, server);
        const m = await smtp.waitFor((x) => x.envelopeTo.includes('late@example.org'), 8000);
        assert.ok(m.text.includes('123456'));
        // Fixed when queued: the retries after the outage carry the Date of the request, not of the send.
        assert.equal(Date.parse(m.header('date') ?? ''), Math.floor(queuedAt / 1000) * 1000, `Date ${m.header('date')}`);
      } finally {
        await server.close();
        await smtp.stop();
      }
    });

    it('waits between tries as README says: 1 s, then twice as long each time (less up to 15% jitter), up to max_retry_interval', async () => {
      const clock = new ManualClock();
      const smtp = await SmtpSink.started();
      smtp.refuse(true);
      const server = await startTestServer(engine, emailOverrides(smtp, {}, { max_retry_interval: '8s' }), { outboxClock: clock });
      try {
        await server.hs.services.outbox.enqueue(mail('backoff@example.org'), { dedupeKey: 'email:backoff' });
        const waits: number[] = [];
        for (let attempt = 1; attempt <= 6; attempt++) {
          const row = await afterAttempts(server, 'email:backoff', attempt);
          assert.equal(row.attempts, attempt);
          assert.match(row.last_error ?? '', /421/);
          const wait = row.next_attempt_ts! - clock.now();
          waits.push(wait);
          // Not due a moment before its time, due at it.
          assert.equal(await server.hs.services.store.outbox.nextDueTs(['email']), row.next_attempt_ts);
          stepOutbox(clock, wait, server);
        }
        const expected = [1000, 2000, 4000, 8000, 8000, 8000];
        waits.forEach((wait, i) => assert.ok(wait >= expected[i]! * 0.85 && wait <= expected[i]!, `wait ${i + 1}: ${wait} ms, expected ${expected[i]! * 0.85}..${expected[i]}`));
        smtp.refuse(false);
        await smtp.waitFor((x) => x.envelopeTo.includes('backoff@example.org'));
        await outboxSettled(server, ['email']);
        const sent = await outboxRow(server, 'email:backoff');
        assert.equal(sent?.attempts, 7);
        assert.ok(sent?.sent_ts);
      } finally {
        await server.close();
        await smtp.stop();
      }
    });

    it('logs in with smtp_user and smtp_pass, and retries while the credentials are refused', async () => {
      const smtp = await SmtpSink.started({ auth: { user: 'myelin', pass: 's3cret pass' } });
      const good = await startTestServer(engine, emailOverrides(smtp, { smtp_user: 'myelin', smtp_pass: 's3cret pass' }));
      const bad = await startTestServer(engine, emailOverrides(smtp, { smtp_user: 'myelin', smtp_pass: 'wrong' }));
      try {
        await bad.hs.services.outbox.enqueue(mail('badauth@example.org'), { dedupeKey: 'auth:bad' });
        await good.hs.services.outbox.enqueue(mail('auth@example.org'));
        await smtp.waitFor((x) => x.envelopeTo.includes('auth@example.org'));
        assert.ok(smtp.logins.some((l) => l.user === 'myelin' && l.ok));
        await until(() => smtp.logins.some((l) => !l.ok), 'a login with the wrong password', 5000);
        const row = await afterAttempts(bad, 'auth:bad', 1);
        assert.ok(row.next_attempt_ts && row.payload && row.dead_ts === null, 'kept for a retry');
        assert.equal(smtp.to('badauth@example.org').length, 0);
      } finally {
        await good.close();
        await bad.close();
        await smtp.stop();
      }
    });

    it('marks a message dead after max_attempts temporary failures', async () => {
      const clock = new ManualClock();
      const smtp = await SmtpSink.started();
      smtp.refuse(true);
      const server = await startTestServer(engine, emailOverrides(smtp, {}, { max_attempts: 2 }), { outboxClock: clock });
      try {
        const { outbox } = server.hs.services;
        await outbox.enqueue(mail('never@example.org'), { dedupeKey: 'email:never' });
        const first = await afterAttempts(server, 'email:never', 1);
        assert.equal(first.dead_ts, null, 'one failure is not the end');
        stepOutbox(clock, 60_000, server);
        let row = await afterAttempts(server, 'email:never', 2);
        await until(async () => Boolean((row = (await outboxRow(server, 'email:never'))!).dead_ts), 'the message to be marked dead');
        assert.ok(row.dead_ts, 'marked dead');
        assert.equal(row.attempts, 2);
        assert.equal(row.payload, null);
        assert.equal(row.next_attempt_ts, null, 'never tried again');
        assert.match(row.last_error ?? '', /421/);
      } finally {
        await server.close();
        await smtp.stop();
      }
    });

    it('delivers mail queued before a restart, from the new process', async () => {
      const clock = new ManualClock();
      const smtp = await SmtpSink.create();
      const server = await startTestServer(engine, emailOverrides(smtp), { outboxClock: clock });
      try {
        for (let i = 0; i < 3; i++) await server.hs.services.outbox.enqueue(mail(`restart${i}@example.org`));
        assert.equal(await server.hs.services.store.outbox.countPending(), 3);
        await server.hs.close();
        await smtp.start();
        assert.equal(smtp.messages.length, 0, 'nothing is sent while no Myelin runs');
        await server.restart();
        // Past any retry wait or lease the old process left.
        stepOutbox(clock, 10 * 60_000, server);
        await smtp.waitForCount(3, 8000);
        assert.deepEqual(smtp.messages.map((m) => m.envelopeTo[0]).sort(), ['restart0@example.org', 'restart1@example.org', 'restart2@example.org']);
      } finally {
        await server.close();
        await smtp.stop();
      }
    });

    it('sends each message exactly once with two homeservers on one database', async () => {
      const clock = new ManualClock();
      const smtp = await SmtpSink.create();
      const a = await startTestServer(engine, emailOverrides(smtp), { outboxClock: clock });
      const b = await startTestServer(engine, emailOverrides(smtp), { outboxClock: clock, database: a.config.database as unknown as Record<string, unknown> });
      try {
        // Queued while SMTP is down, so that both workers race for every retry.
        await Promise.all(
          Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? a : b).hs.services.outbox.enqueue(mail(`batch${i}@example.org`), { dedupeKey: `batch:${i}` })),
        );
        for (let i = 0; i < 30; i++) await afterAttempts(a, `batch:${i}`, 1);
        await smtp.start();
        stepOutbox(clock, 10 * 60_000, a, b);
        await smtp.waitForCount(30, 10_000);
        // Once nothing is pending or in flight, and no lease can end (the clock stands still), nothing more is sent.
        await outboxSettled(a, ['email']);
        assert.equal(smtp.messages.length, 30);
        assert.equal(new Set(smtp.messages.map((m) => m.envelopeTo[0])).size, 30);
        assert.equal(new Set(smtp.messages.map((m) => m.header('message-id'))).size, 30);
        assert.equal(await a.hs.services.store.outbox.countPending(), 0);
      } finally {
        await b.hs.close();
        await a.close();
        await smtp.stop();
      }
    });
  });
}
