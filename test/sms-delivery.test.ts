import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebhookReceiver } from './helpers/fake-twilio.js';
import { afterAttempts, outboxRow, outboxSettled, stepOutbox } from './helpers/outbox.js';
import { ENGINES, HTTP_ENGINES, ManualClock, startTestServer, type TestServer } from './helpers/server.js';
import { clientSecret, nextSms, smsCode, startSmsEnv, type SmsEnv } from './helpers/sms.js';
import { until } from './helpers/until.js';

const REGISTER = '/v3/register/msisdn/requestToken';
const SUBMIT = '/_matrix/client/unstable/registration/msisdn/submit_token';

for (const engine of ENGINES) {
  // Both engines: the outbox's claims, retries and a restart go through engine-specific SQL.
  describe(`SMS through the durable outbox (${engine})`, () => {
    let env: SmsEnv;
    const clock = new ManualClock();
    before(async () => {
      env = await startSmsEnv(engine, {}, { outboxClock: clock });
    });
    after(async () => env.close());

    async function requestToken(phone: string) {
      const cs = clientSecret();
      const res = await env.server.api.post(REGISTER, { client_secret: cs, country: 'DE', phone_number: phone, send_attempt: 1 });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return { sid: res.body.sid as string, cs };
    }

    const key = (sid: string) => `sms:${sid}:1`;

    it('delivers an SMS once the gateway stops answering 500, at the next try', async () => {
      env.twilio.fail(500);
      const hits = env.twilio.hits;
      const skip = env.twilio.messages.length;
      const { sid, cs } = await requestToken('0151 40000001');
      await afterAttempts(env.server, key(sid), 1);
      stepOutbox(clock, 60_000, env.server);
      const pending = await afterAttempts(env.server, key(sid), 2);
      assert.equal(env.twilio.messages.length, skip);
      assert.equal(env.twilio.hits - hits, 2, 'retried');
      assert.equal(pending.sent_ts, null);
      assert.match(pending.last_error ?? '', /answered 500/);
      env.twilio.recover();
      stepOutbox(clock, 60_000, env.server);
      const sms = await nextSms(env.twilio, '+4915140000001', skip, 5000);
      await outboxSettled(env.server, ['sms']);
      assert.equal(env.twilio.messages.slice(skip).length, 1);
      const sent = await outboxRow(env.server, key(sid));
      assert.ok(sent?.sent_ts);
      assert.equal(sent?.payload, null, 'the code is forgotten once sent');
      assert.equal((await env.server.api.post(SUBMIT, { sid, client_secret: cs, token: smsCode(sms) })).status, 200);
    });

    it('delivers an SMS queued while the gateway is down, across a homeserver restart', async () => {
      await env.twilio.stop();
      const skip = env.twilio.messages.length;
      const { sid, cs } = await requestToken('0151 40000002');
      await afterAttempts(env.server, key(sid), 1);
      await env.server.restart();
      // The new process tries again, and the gateway is still down.
      stepOutbox(clock, 60_000, env.server);
      await afterAttempts(env.server, key(sid), 2);
      assert.equal(env.twilio.messages.length, skip);
      await env.twilio.start();
      stepOutbox(clock, 60_000, env.server);
      const sms = await nextSms(env.twilio, '+4915140000002', skip, 5000);
      await outboxSettled(env.server, ['sms']);
      assert.equal(env.twilio.messages.slice(skip).length, 1);
      assert.equal((await env.server.api.post(SUBMIT, { sid, client_secret: cs, token: smsCode(sms) })).status, 200);
    });

    it('does not retry a message the gateway refuses for good (400)', async () => {
      env.twilio.fail(400, 1);
      const hits = env.twilio.hits;
      const { sid } = await requestToken('0151 40000003');
      let row = await outboxRow(env.server, key(sid));
      await until(async () => Boolean((row = await outboxRow(env.server, key(sid)))?.dead_ts), 'the SMS to be marked dead', 5000);
      assert.ok(row?.dead_ts, 'marked dead');
      assert.equal(row?.payload, null);
      // Nothing is left to try, however much later.
      assert.equal(row?.next_attempt_ts, null);
      stepOutbox(clock, 3_600_000, env.server);
      await outboxSettled(env.server, ['sms']);
      assert.equal(env.twilio.hits, hits + 1);
    });
  });
}

for (const engine of HTTP_ENGINES) {
  describe(`SMS through the webhook provider (${engine})`, () => {
    const secret = 'gateway-shared-secret';
    let receiver: WebhookReceiver;
    let server: TestServer;
    const clock = new ManualClock();
    before(async () => {
      receiver = await new WebhookReceiver(secret).start();
      server = await startTestServer(engine, {
        sms: { provider: 'webhook', webhook: { url: `${receiver.url}/sms`, secret, headers: { authorization: 'Bearer gw' } }, app_name: 'Hooked' },
        rc_3pid_validation: { per_second: 1000, burst_count: 1000 },
        outbox: { max_retry_interval: '1s' },
      }, { outboxClock: clock });
      await server.api.get('/versions');
    });
    after(async () => {
      await server.close();
      await receiver.stop();
    });

    it('POSTs the signed message, retried with the same id after a failure, and its code validates', async () => {
      receiver.fail(503, 1);
      const cs = clientSecret();
      const res = await server.api.post(REGISTER, { client_secret: cs, country: 'FR', phone_number: '06 98 76 54 32', send_attempt: 1 });
      assert.equal(res.status, 200);
      await afterAttempts(server, `sms:${res.body.sid as string}:1`, 1);
      stepOutbox(clock, 60_000, server);
      const [got] = await receiver.waitFor(1);
      assert.equal(receiver.hits, 2);
      assert.equal(receiver.bodies.length, 2);
      const refused = JSON.parse(receiver.bodies[0]!) as Record<string, unknown>;
      assert.equal(refused.id, got!.body.id, 'the retry carries the id of the refused try');
      assert.equal(refused.body, got!.body.body, 'and the same text');
      assert.ok(got!.signatureValid);
      assert.equal(got!.headers.authorization, 'Bearer gw');
      assert.equal(got!.body.to, '+33698765432');
      assert.equal(got!.body.msisdn, '33698765432');
      assert.match(got!.body.id as string, /^[0-9a-f-]{36}$/);
      const row = await server.hs.services.store.outbox.findByDedupeKey(`sms:${res.body.sid as string}:1`);
      assert.equal(got!.body.id, row?.id);
      const m = /^(\d{6}) is your Hooked verification code\.$/.exec(got!.body.body as string);
      assert.ok(m, String(got!.body.body));
      const ok = await server.api.post(SUBMIT, { sid: res.body.sid, client_secret: cs, token: m[1] });
      assert.equal(ok.status, 200);
    });
  });
}
