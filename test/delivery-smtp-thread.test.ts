import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../src/config/load.js';
import type { EmailConfig } from '../src/config/sections/email.js';
import { PermanentDeliveryError } from '../src/delivery/channels.js';
import type { EmailPayload } from '../src/delivery/email/message.js';
import { ThreadedSmtpTransport } from '../src/delivery/email/smtp-thread.js';
import { freePort } from './helpers/server.js';
import { SmtpSink } from './helpers/smtp.js';
import { until } from './helpers/until.js';

const FROM = { name: 'Myelin', address: 'noreply@test.local' };

function emailConfig(port: number): EmailConfig {
  const { config } = parseConfig({ server_name: 'test.local', email: { smtp_host: '127.0.0.1', smtp_port: port, enable_tls: false, notif_from: 'Myelin <noreply@test.local>' } });
  return config.email!;
}

function payload(to: string, n: number): EmailPayload {
  return {
    to,
    subject: `Validate your email (${n})`,
    text: `Bonjour, voilà votre code : ${100000 + n}\nhttps://hs.example/validate?token=t${n}`,
    html: `<p>Bonjour, voilà votre code : <b>${100000 + n}</b></p>`,
    messageId: `<m${n}@test.local>`,
    date: Date.now(),
  };
}

describe('SMTP from its own thread', () => {
  let smtp: SmtpSink;
  let transport: ThreadedSmtpTransport;
  before(async () => {
    smtp = await SmtpSink.started();
    transport = new ThreadedSmtpTransport(emailConfig(smtp.port));
  });
  after(async () => {
    await transport.close();
    await smtp.stop();
  });

  it('sends concurrent mails, each once and intact (base64 parts, non-ASCII text)', async () => {
    await Promise.all(Array.from({ length: 30 }, (_, n) => transport.send(FROM, payload(`user${n}@example.org`, n))));
    assert.equal(smtp.messages.length, 30);
    for (let n = 0; n < 30; n++) {
      const got = smtp.messages.filter((m) => m.envelopeTo.includes(`user${n}@example.org`));
      assert.equal(got.length, 1);
      const m = got[0]!;
      assert.equal(m.header('message-id'), `<m${n}@test.local>`);
      assert.equal(m.subject, `Validate your email (${n})`);
      assert.equal(m.text.trim(), payload('', n).text);
      assert.equal(m.html.trim(), payload('', n).html);
      assert.match(m.raw, /Content-Transfer-Encoding: base64/i);
    }
  });

  it('keeps a refusal for good apart from a temporary failure across the thread boundary', async () => {
    smtp.rejectRecipients((a) => a === 'nobody@example.org');
    await assert.rejects(transport.send(FROM, payload('nobody@example.org', 1)), (err) => err instanceof PermanentDeliveryError);
    smtp.rejectRecipients(() => false);
    await transport.send(FROM, payload('nobody@example.org', 1));
    assert.equal(smtp.messages.filter((m) => m.envelopeTo.includes('nobody@example.org')).length, 1);
    const nowhere = new ThreadedSmtpTransport(emailConfig(await freePort()));
    try {
      await assert.rejects(nowhere.send(FROM, payload('later@example.org', 2)), (err) => err instanceof Error && !(err instanceof PermanentDeliveryError));
    } finally {
      await nowhere.close();
    }
  });

  it('refuses a header injection from inside the thread, for good', async () => {
    const bad = { ...payload('eve@example.org', 3), subject: 'hi\r\nBcc: victim@example.org' };
    await assert.rejects(transport.send(FROM, bad), /line break in the Subject header/);
    assert.equal(smtp.messages.filter((m) => m.envelopeTo.includes('victim@example.org')).length, 0);
  });

  it('starts a new thread for mail sent after close', async () => {
    await transport.close();
    await transport.send(FROM, payload('again@example.org', 4));
    assert.equal(smtp.messages.filter((m) => m.envelopeTo.includes('again@example.org')).length, 1);
  });
});

describe('SMTP thread closed while a mail hangs', () => {
  let silent: Server;
  const sockets = new Set<Socket>();
  let port: number;
  before(async () => {
    port = await freePort();
    // Accepts connections and never greets: the mail stays in flight until the thread goes.
    silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(port, '127.0.0.1', resolve));
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  it('fails the mail in flight (for the outbox to retry) instead of leaving it pending', async () => {
    const transport = new ThreadedSmtpTransport(emailConfig(port));
    const sending = transport.send(FROM, payload('stuck@example.org', 5));
    const outcome = sending.then(
      () => 'sent',
      (err: unknown) => err,
    );
    await until(() => sockets.size > 0, 'the SMTP thread to connect');
    assert.equal(sockets.size > 0, true, 'the thread connected');
    const started = Date.now();
    await transport.close();
    assert.ok(Date.now() - started < 7_000);
    const result = await outcome;
    assert.ok(result instanceof Error && !(result instanceof PermanentDeliveryError), String(result));
  });
});
