import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../src/config/load.js';
import { PayloadSeal } from '../src/delivery/payload-seal.js';
import { outboxSettled } from './helpers/outbox.js';
import { ENGINES, PG, startTestServer, testConfig } from './helpers/server.js';
import { SmtpSink } from './helpers/smtp.js';
import { codeOf, followLink, linkOf, secret } from './helpers/threepid-email.js';
import { until } from './helpers/until.js';

for (const engine of ENGINES) {
  describe(`queued mail at rest (${engine})`, () => {
    it('a waiting mail keeps neither its link token, nor its code, nor the client secret readable in the database; once sent, both work', async () => {
      const smtp = await SmtpSink.create(); // not listening yet: the mail waits in the outbox
      const server = await startTestServer(engine, {
        email: smtp.emailConfig(),
        rc_3pid_validation: { per_second: 1000, burst_count: 1000 },
        outbox: { poll_interval: 100 },
      });
      try {
        const clientSecret = secret();
        const requested = await server.api.post<{ sid: string; submit_url: string }>('/v3/register/email/requestToken', {
          client_secret: clientSecret,
          email: 'at-rest@example.org',
          send_attempt: 1,
        });
        assert.equal(requested.status, 200, JSON.stringify(requested.body));
        const { kysely } = server.hs.services.store.db;
        const rows = () => kysely.selectFrom('outbox').selectAll().execute();
        await until(async () => (await rows()).some((r) => r.attempts >= 1 && r.last_error !== null), 'a failed send attempt');
        const waiting = await rows();
        assert.equal(waiting.length, 1);
        assert.equal(waiting[0]!.sent_ts, null);
        assert.notEqual(waiting[0]!.payload, null, 'the message is still queued with its content');

        await smtp.start();
        const mail = await smtp.waitFor((m) => m.envelopeTo.includes('at-rest@example.org'), 10_000);
        const link = new URL(linkOf(mail));
        const token = link.searchParams.get('token')!;
        const code = codeOf(mail);
        assert.ok(token.length >= 24 && code.length === 6);
        const stored = JSON.stringify(waiting);
        assert.ok(!stored.includes(token), 'the link token is not in the outbox row');
        assert.ok(!stored.includes(code), 'the code is not in the outbox row');
        assert.ok(!stored.includes(clientSecret), 'the client secret is not in the outbox row');

        // The mail that went out works: the code validates the session, and the link opens.
        const submitted = await server.api.post(new URL(requested.body.submit_url).pathname, { sid: requested.body.sid, client_secret: clientSecret, token: code });
        assert.equal(submitted.status, 200, JSON.stringify(submitted.body));
        assert.equal(submitted.body.success, true);
        const page = await followLink(link.href);
        assert.equal(page.status, 200);
        // The sink has the mail a moment before the sender hears its 250 and marks it sent.
        await outboxSettled(server, ['email']);
        const sent = await rows();
        assert.notEqual(sent[0]!.sent_ts, null);
        assert.equal(sent[0]!.payload, null);
      } finally {
        await server.close();
        await smtp.stop();
      }
    });
  });
}

describe('the key queued mail is sealed with', () => {
  it('is required on PostgreSQL (every process must share it), and a payload sealed with another key or for another row does not open', () => {
    const pg = { name: 'psycopg2', args: { ...PG, database: 'unused' } };
    assert.throws(() => PayloadSeal.forConfig(testConfig(1, pg, { macaroon_secret_key: undefined })), (err: Error) => err instanceof ConfigError && /macaroon_secret_key/.test(err.message));
    const seal = PayloadSeal.forConfig(testConfig(1, pg, { macaroon_secret_key: 'one' }));
    const sealed = seal.seal('id-1', '{"code":"123456"}');
    assert.ok(!sealed.includes('123456'));
    assert.equal(seal.open('id-1', sealed), '{"code":"123456"}');
    assert.throws(() => seal.open('id-2', sealed));
    assert.throws(() => PayloadSeal.fromSecret('two').open('id-1', sealed));
    // A message queued before payloads were sealed still goes out.
    assert.equal(seal.open('id-0', '{"to":"a@example.org"}'), '{"to":"a@example.org"}');
  });
});
