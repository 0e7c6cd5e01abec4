import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openDb, type Db } from '../src/storage/db.js';
import { outboxSettled } from './helpers/outbox.js';
import { ENGINES } from './helpers/server.js';
import { clientSecret, nextSms, smsCode, startSmsEnv, type SmsEnv } from './helpers/sms.js';
import { codeOf, linkOf, secret, startEmailEnv, type EmailEnv } from './helpers/threepid-email.js';

/** Every row of every table, as text: what someone reading the database gets. */
async function databaseText(db: Db): Promise<string> {
  const tables = await db.kysely.introspection.getTables();
  assert.ok(tables.length > 5, 'the tables were found');
  const parts: string[] = [];
  for (const table of tables) {
    const rows = await db.kysely.selectFrom(table.name as never).selectAll().execute();
    parts.push(`${table.name}: ${JSON.stringify(rows)}`);
  }
  return parts.join('\n');
}

/** A short code as a number of its own in the text, not as digits inside a longer number (a timestamp). */
const holdsCode = (text: string, code: string) => new RegExp(`(?<![0-9])${code}(?![0-9])`).test(text);

// Both engines: what is read back is each engine's own storage.
for (const engine of ENGINES) {
  describe(`secrets at rest: the database holds hashes only (${engine})`, () => {
    let email: EmailEnv;
    let sms: SmsEnv;
    let db: Db;
    before(async () => {
      email = await startEmailEnv(engine);
      sms = await startSmsEnv(engine);
      db = await openDb(email.server.config.database);
    });
    after(async () => {
      await db.close();
      await email.close();
      await sms.close();
    });

    it('a mailed link token and code, the client secret, passwords and access tokens are not in the database, and the link and code work', async () => {
      const api = email.server.api;
      const cs = secret();
      const req = await api.post<{ sid: string }>('/v3/register/email/requestToken', { client_secret: cs, email: 'rest@example.org', send_attempt: 1 });
      assert.equal(req.status, 200, JSON.stringify(req.body));
      const mail = await email.smtp.waitFor((m) => m.envelopeTo.includes('rest@example.org'));
      const token = new URL(linkOf(mail)).searchParams.get('token');
      const code = codeOf(mail);
      assert.ok(token && token.length >= 32, `a link token: ${token}`);
      const password = 'Stored-Only-Hashed-9';
      const account = await api.register('restful', password);
      const login = await api.post('/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'restful' }, password, refresh_token: true });
      assert.equal(login.status, 200);
      // Once sent, the queued mail is gone too; before that it is sealed (outbox-payload-at-rest.test.ts).
      await outboxSettled(email.server, ['email']);

      const text = await databaseText(db);
      const row = await db.kysely.selectFrom('threepid_validation_sessions').selectAll().where('sid', '=', req.body.sid).executeTakeFirstOrThrow();
      assert.ok(row.link_token_hash && row.code_hash && row.client_secret_hash, 'the session keeps hashes');
      assert.ok(!text.includes(token), 'the link token is not stored');
      assert.ok(!holdsCode(text, code), 'the code is not stored');
      assert.ok(!text.includes(cs), 'the client secret is not stored');
      assert.ok(!text.includes(password), 'the password is not stored');
      for (const t of [account.access_token, login.body.access_token as string, login.body.refresh_token as string]) {
        assert.ok(typeof t === 'string' && t.length >= 16);
        assert.ok(!text.includes(t), `a token is stored: ${t.slice(0, 6)}...`);
      }
      // What was hashed still works: the code validates the session.
      const submitted = await api.post('/_matrix/client/unstable/registration/email/submit_token', { sid: req.body.sid, client_secret: cs, token: code });
      assert.equal(submitted.status, 200);
    });

    it('an SMS code is not in the database, and it works', async () => {
      const smsDb = await openDb(sms.server.config.database);
      try {
        const cs = clientSecret();
        const skip = sms.twilio.messages.length;
        const req = await sms.server.api.post<{ sid: string }>('/v3/register/msisdn/requestToken', { client_secret: cs, country: 'DE', phone_number: '0151 40000077', send_attempt: 1 });
        assert.equal(req.status, 200, JSON.stringify(req.body));
        const code = smsCode(await nextSms(sms.twilio, '+4915140000077', skip));
        await outboxSettled(sms.server, ['sms']);
        const text = await databaseText(smsDb);
        const row = await smsDb.kysely.selectFrom('threepid_validation_sessions').selectAll().where('sid', '=', req.body.sid).executeTakeFirstOrThrow();
        assert.ok(row.code_hash, 'the session keeps a hash of the code');
        assert.ok(!holdsCode(text, code), 'the SMS code is not stored');
        assert.ok(!text.includes(cs), 'the client secret is not stored');
        const submitted = await sms.server.api.post('/_matrix/client/unstable/registration/msisdn/submit_token', { sid: req.body.sid, client_secret: cs, token: code });
        assert.equal(submitted.status, 200);
      } finally {
        await smsDb.close();
      }
    });
  });
}
