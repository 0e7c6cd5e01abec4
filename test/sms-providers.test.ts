import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../src/config/load.js';
import type { SmsConfig } from '../src/config/sections/sms.js';
import { createSmsSender, SmsSendError } from '../src/delivery/sms/index.js';
import { renderSms } from '../src/delivery/sms/template.js';
import { FakeTwilio, WebhookReceiver } from './helpers/fake-twilio.js';
import { ManualClock } from './helpers/server.js';

const base = { server_name: 'test.local', database: { name: 'sqlite3', args: { database: ':memory:' } } };

function smsConfig(sms: Record<string, unknown>): SmsConfig {
  const config = parseConfig({ ...base, sms }).config;
  assert.ok(config.sms);
  return config.sms;
}

const silent = { warn: () => undefined };

async function rejectsWith(promise: Promise<unknown>, check: (err: SmsSendError) => void): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof SmsSendError, String(err));
    check(err);
    return true;
  });
}

describe('sms config', () => {
  it('has defaults: 10 minute codes of 6 digits, caps, templates with {code}', () => {
    const config = parseConfig({ ...base, sms: { provider: 'log' } }).config;
    assert.equal(config.enable_msisdn_password_reset, false);
    assert.equal(config.sms?.validation_token_lifetime, 600_000);
    assert.equal(config.sms?.code_length, 6);
    assert.equal(config.sms?.max_per_number_per_day, 10);
    assert.equal(config.sms?.max_per_hour, 500);
    assert.deepEqual(config.sms?.denied_country_codes, []);
    assert.equal(config.sms?.allowed_country_codes, undefined);
    assert.match(config.sms!.sms_templates.registration, /\{code\}/);
    assert.equal(parseConfig(base).config.sms, undefined);
  });

  it('parses durations, upper-cases country codes and defaults the Twilio URL', () => {
    const sms = smsConfig({
      provider: 'twilio',
      twilio: { account_sid: 'AC1', auth_token: 't', messaging_service_sid: 'MG1' },
      validation_token_lifetime: '3m',
      allowed_country_codes: ['gb', 'DE'],
    });
    assert.equal(sms.validation_token_lifetime, 180_000);
    assert.deepEqual(sms.allowed_country_codes, ['GB', 'DE']);
    assert.equal(sms.twilio?.api_base_url, 'https://api.twilio.com');
  });

  for (const [name, sms, key] of [
    ['twilio without its section', { provider: 'twilio' }, 'sms.twilio'],
    ['webhook without its section', { provider: 'webhook' }, 'sms.webhook'],
    ['both From and MessagingServiceSid', { provider: 'twilio', twilio: { account_sid: 'a', auth_token: 'b', from: '+1', messaging_service_sid: 'c' } }, 'sms.twilio'],
    ['neither From nor MessagingServiceSid', { provider: 'twilio', twilio: { account_sid: 'a', auth_token: 'b' } }, 'sms.twilio'],
    ['an unknown provider', { provider: 'carrier-pigeon' }, 'sms.provider'],
    ['a template without {code}', { provider: 'log', sms_templates: { registration: 'hello {app_name}' } }, 'sms.sms_templates.registration'],
    ['a template with an unknown placeholder', { provider: 'log', sms_templates: { registration: '{code} for {user}' } }, 'sms.sms_templates.registration'],
    ['a bad country code', { provider: 'log', denied_country_codes: ['GBR'] }, 'sms.denied_country_codes.0'],
    ['a non-http webhook URL', { provider: 'webhook', webhook: { url: 'ftp://x/' } }, 'sms.webhook.url'],
  ] as const) {
    it(`refuses ${name}, naming the key`, () => {
      assert.throws(
        () => parseConfig({ ...base, sms }),
        (err: unknown) => err instanceof ConfigError && err.message.includes(`'${key}'`),
      );
    });
  }

  it('renders templates with only the known placeholders, without control characters', () => {
    const sms = smsConfig({ provider: 'log', sms_templates: { add_threepid: '{app_name}: {code} ({server_name}) {code}' } });
    assert.equal(renderSms(sms, 'add_threepid', { app_name: 'Ex\nample', code: '012345', server_name: 'example.org', other: 'x' }), 'Example: 012345 (example.org) 012345');
    // A value that looks like a placeholder is not expanded again.
    assert.equal(renderSms(sms, 'add_threepid', { app_name: '{code}', code: '1', server_name: 's' }), '{code}: 1 (s) 1');
  });
});

describe('twilio provider', () => {
  let twilio: FakeTwilio;
  before(async () => {
    twilio = await new FakeTwilio().start();
  });
  after(async () => twilio.stop());

  it('POSTs To, From and Body as a form with Basic auth to the Messages resource', async () => {
    const sender = createSmsSender(smsConfig(twilio.smsConfig()), new ManualClock(), silent);
    const before = twilio.messages.length;
    await sender.send({ to: '447700900123', body: '123456 is your code & more=yes' });
    const [sms] = (await twilio.waitFor(before + 1)).slice(before);
    assert.deepEqual(sms!.fields, { To: '+447700900123', From: '+15005550006', Body: '123456 is your code & more=yes' });
  });

  it('uses MessagingServiceSid instead of From when configured, and a base URL with a trailing slash', async () => {
    const config = twilio.smsConfig();
    const sender = createSmsSender(
      smsConfig({ ...config, twilio: { account_sid: twilio.accountSid, auth_token: twilio.authToken, messaging_service_sid: 'MG0123', api_base_url: `${twilio.url}/` } }),
      new ManualClock(),
      silent,
    );
    const before = twilio.messages.length;
    await sender.send({ to: '4915123456789', body: 'hi' });
    const [sms] = (await twilio.waitFor(before + 1)).slice(before);
    assert.deepEqual(sms!.fields, { To: '+4915123456789', MessagingServiceSid: 'MG0123', Body: 'hi' });
  });

  it('throws a retryable error when the auth token is wrong, and nothing is sent', async () => {
    const sender = createSmsSender(
      smsConfig({ provider: 'twilio', twilio: { account_sid: twilio.accountSid, auth_token: 'wrong', from: '+15005550006', api_base_url: twilio.url } }),
      new ManualClock(),
      silent,
    );
    const before = twilio.messages.length;
    await rejectsWith(sender.send({ to: '447700900123', body: 'x' }), (err) => {
      assert.equal(err.status, 401);
      assert.equal(err.permanent, false);
      assert.ok(!err.message.includes('wrong'));
    });
    assert.equal(twilio.messages.length, before);
  });

  it('throws a permanent error when Twilio refuses the request (400)', async () => {
    const sender = createSmsSender(smsConfig(twilio.smsConfig()), new ManualClock(), silent);
    await rejectsWith(sender.send({ to: '', body: 'x' }), (err) => {
      assert.equal(err.status, 400);
      assert.equal(err.permanent, true);
      assert.match(err.message, /21211/);
    });
  });

  it('throws a retryable error on 500 and when the gateway is down, and sends once it is back', async () => {
    const sender = createSmsSender(smsConfig(twilio.smsConfig()), new ManualClock(), silent);
    twilio.fail(500, 1);
    await rejectsWith(sender.send({ to: '447700900123', body: 'a' }), (err) => {
      assert.equal(err.status, 500);
      assert.equal(err.permanent, false);
    });
    await twilio.stop();
    await rejectsWith(sender.send({ to: '447700900123', body: 'b' }), (err) => {
      assert.equal(err.status, undefined);
      assert.equal(err.permanent, false);
      assert.match(err.message, /request to the SMS gateway failed \((ECONNREFUSED|UND_ERR_SOCKET|ECONNRESET)\)/);
    });
    await twilio.start();
    const before = twilio.messages.length;
    await sender.send({ to: '447700900123', body: 'c' });
    assert.equal(twilio.messages.length, before + 1);
  });

  it('keeps only the code and message of an error answer, never an echoed body', async () => {
    const echo: Server = createServer((req, res) => {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString()));
      req.on('end', () => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ code: 30001, message: 'Queue overflow', request: raw }));
      });
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = echo.address() as AddressInfo;
      const sender = createSmsSender(
        smsConfig({ provider: 'twilio', twilio: { account_sid: 'AC1', auth_token: 't', from: '+1', api_base_url: `http://127.0.0.1:${port}` } }),
        new ManualClock(),
        silent,
      );
      await rejectsWith(sender.send({ to: '447700900123', body: '424242 is your code' }), (err) => {
        assert.equal(err.message, 'twilio: SMS gateway answered 500: 30001 Queue overflow');
        assert.ok(!err.message.includes('424242'));
      });
    } finally {
      await new Promise<void>((resolve) => echo.close(() => resolve()));
    }
  });

  it('gives up on a gateway that does not answer, after request_timeout', async () => {
    const hanging: Server = createServer(() => undefined);
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = hanging.address() as AddressInfo;
      const sender = createSmsSender(
        smsConfig({ provider: 'twilio', twilio: { account_sid: 'AC1', auth_token: 't', from: '+1', api_base_url: `http://127.0.0.1:${port}`, request_timeout: 200 } }),
        new ManualClock(),
        silent,
      );
      const started = Date.now();
      await rejectsWith(sender.send({ to: '447700900123', body: 'x' }), (err) => assert.equal(err.permanent, false));
      assert.ok(Date.now() - started < 2000);
    } finally {
      hanging.closeAllConnections();
      await new Promise<void>((resolve) => hanging.close(() => resolve()));
    }
  });
});

describe('webhook provider', () => {
  const secret = 'webhook-secret-0123';
  let receiver: WebhookReceiver;
  before(async () => {
    receiver = await new WebhookReceiver(secret).start();
  });
  after(async () => receiver.stop());

  it('POSTs {to, msisdn, body, timestamp, id} as JSON with the configured headers and a valid signature', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const sender = createSmsSender(
      smsConfig({ provider: 'webhook', webhook: { url: `${receiver.url}/sms`, headers: { Authorization: 'Bearer gw-token', 'X-Tenant': 'myelin' }, secret } }),
      clock,
      silent,
    );
    await sender.send({ to: '33612345678', body: 'Votre code: 123456', id: 'msg-1' });
    const [got] = await receiver.waitFor(1);
    assert.ok(got!.signatureValid);
    assert.deepEqual(got!.body, { to: '+33612345678', msisdn: '33612345678', body: 'Votre code: 123456', timestamp: 1_700_000_000_000, id: 'msg-1' });
    assert.equal(got!.headers.authorization, 'Bearer gw-token');
    assert.equal(got!.headers['x-tenant'], 'myelin');
    assert.match(got!.headers['content-type'] ?? '', /^application\/json/);
    assert.match(String(got!.headers['x-myelin-signature']), /^sha256=[0-9a-f]{64}$/);
  });

  it('fails (retryably) when signed with another secret: the receiver refuses it', async () => {
    const sender = createSmsSender(smsConfig({ provider: 'webhook', webhook: { url: `${receiver.url}/sms`, secret: 'not-the-secret' } }), new ManualClock(), silent);
    const before = receiver.all.length;
    await rejectsWith(sender.send({ to: '33612345678', body: 'x' }), (err) => {
      assert.equal(err.status, 401);
      assert.equal(err.permanent, false);
    });
    assert.equal(receiver.all.length, before + 1);
    assert.equal(receiver.all.at(-1)!.signatureValid, false);
  });

  it('sends no signature header without a secret', async () => {
    const open = await new WebhookReceiver(undefined).start();
    try {
      const sender = createSmsSender(smsConfig({ provider: 'webhook', webhook: { url: `${open.url}/sms` } }), new ManualClock(), silent);
      await sender.send({ to: '33612345678', body: 'x' });
      const [got] = await open.waitFor(1);
      assert.equal(got!.headers['x-myelin-signature'], undefined);
      assert.ok(got!.signatureValid);
    } finally {
      await open.stop();
    }
  });
});

describe('log provider', () => {
  it('prints the message instead of sending it', async () => {
    const lines: Record<string, unknown>[] = [];
    const sender = createSmsSender(smsConfig({ provider: 'log' }), new ManualClock(), { warn: (obj) => lines.push(obj) });
    await sender.send({ to: '447700900123', body: '123456 is your code' });
    assert.deepEqual(lines, [{ sms: { to: '+447700900123', body: '123456 is your code' } }]);
  });
});
