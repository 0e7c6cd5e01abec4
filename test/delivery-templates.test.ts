import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTemplates } from '../src/delivery/index.js';
import { parseAcceptLanguage } from '../src/delivery/templates.js';
import type { EmailRequest } from '../src/delivery/types.js';
import { startHomeserver } from '../src/homeserver.js';
import { capturedLog } from './helpers/log.js';
import { HTTP_ENGINES, freePort, freshDatabase, startTestServer, testConfig, type TestServer } from './helpers/server.js';
import { SmtpSink } from './helpers/smtp.js';
import { until } from './helpers/until.js';

const LINK = 'https://hs.example/_matrix/client/v3/validate?token=s3cr3tlinktoken';
const CODE = '482913';

function mail(to: string, extra: Partial<EmailRequest> = {}): EmailRequest {
  return { channel: 'email', to, template: 'registration', vars: { link: LINK, code: CODE }, ...extra };
}

describe('Accept-Language parsing', () => {
  it('orders by q-value, then by position, and drops q=0 and junk', () => {
    assert.deepEqual(parseAcceptLanguage('de;q=0.5, fr-CH, en;q=0.8, it;q=0, *;q=0.1, <script>, fr'), ['fr-ch', 'fr', 'en', 'de', '*']);
    assert.deepEqual(parseAcceptLanguage(undefined), []);
    assert.deepEqual(parseAcceptLanguage('en;q=2'), []);
  });
});

describe('page templates', () => {
  const config = testConfig(1, { name: 'sqlite3', args: { database: ':memory:' } }, { email: { notif_from: 'x <a@test.local>', app_name: 'My <App>' } });
  const templates = createTemplates(config);

  it('renders a confirmation page with a POST form and escaped fields', () => {
    const html = templates.renderPage('password_reset_confirmation', { sid: 'sid"><b>', token: 'tok', client_secret: 'cs' });
    assert.match(html, /<form method="post">/);
    assert.match(html, /name="sid" value="sid&quot;&gt;&lt;b&gt;"/);
    assert.match(html, /name="token" value="tok"/);
    assert.match(html, /name="client_secret" value="cs"/);
    assert.match(html, /My &lt;App&gt;/);
    assert.doesNotMatch(html, /<script/i, 'no script: nothing submits the form but a person');
    for (const flow of ['registration', 'add_threepid']) {
      const page = templates.renderPage(`${flow}_confirmation`, { sid: 's', token: 't', client_secret: 'c', action: '/submit?x=1&y=2' });
      assert.match(page, /<form method="post" action="\/submit\?x=1&amp;y=2">/);
    }
  });

  it('renders success and failure pages, escaping failure_reason', () => {
    for (const flow of ['registration', 'add_threepid', 'password_reset']) {
      assert.match(templates.renderPage(`${flow}_success`), /<h1>/);
      const failure = templates.renderPage(`${flow}_failure`, { failure_reason: '<script>x</script>' });
      assert.match(failure, /&lt;script&gt;x&lt;\/script&gt;/);
      assert.doesNotMatch(failure, /<script>x/);
    }
  });

  it('gives each flow its own default subject; a carried-over email_validation still covers both of Synapse\'s mails', () => {
    const subject = (t: typeof templates, name: 'registration' | 'add_threepid' | 'password_reset') => t.renderEmail(name, { link: LINK, code: CODE }).subject;
    assert.equal(subject(templates, 'registration'), '[test.local] Validate your email');
    assert.equal(subject(templates, 'add_threepid'), '[test.local] Confirm the address to add to your account');
    assert.equal(subject(templates, 'password_reset'), '[test.local] Password reset');
    const custom = (subjects: Record<string, string>) =>
      createTemplates(testConfig(1, { name: 'sqlite3', args: { database: ':memory:' } }, { email: { notif_from: 'x <a@test.local>', subjects } }));
    const synapseConfig = custom({ email_validation: '[%(app)s] Check your address' });
    assert.equal(subject(synapseConfig, 'registration'), '[Matrix] Check your address');
    assert.equal(subject(synapseConfig, 'add_threepid'), '[Matrix] Check your address');
    assert.equal(subject(custom({ add_threepid: 'Adding %(server_name)s' }), 'add_threepid'), 'Adding test.local');
  });

  it('offers the code only to apps that ask for one, and says what is left after confirming an added address', () => {
    for (const name of ['registration', 'password_reset', 'add_threepid'] as const) {
      const m = templates.renderEmail(name, { link: LINK, code: CODE });
      for (const part of [m.text, m.html]) {
        assert.match(part, /If your app asks for a code, enter this one:/, name);
        assert.doesNotMatch(part, /Or enter this code/, name);
      }
    }
    const fr = templates.renderEmail('registration', { link: LINK, code: CODE }, 'fr');
    assert.match(fr.text, /Si votre application vous demande un code, saisissez celui-ci : 482913/);
    const page = templates.renderPage('add_threepid_success');
    assert.match(page, /<h1>Address confirmed<\/h1>/);
    assert.doesNotMatch(page, /Address added/);
    assert.match(page, /Go back to your app to finish adding it/);
  });

  it('renders every mail in text and HTML with the configured subject', () => {
    for (const name of ['registration', 'password_reset', 'add_threepid', 'already_in_use'] as const) {
      const m = templates.renderEmail(name, { link: LINK, code: CODE });
      assert.ok(m.subject.startsWith('[test.local] '), m.subject);
      assert.match(m.html, /<html/);
      assert.ok(m.text.length > 50);
      if (name !== 'already_in_use') {
        assert.ok(m.text.includes(LINK) && m.text.includes(CODE));
        assert.ok(m.html.includes(`href="${LINK}"`) && m.html.includes(CODE));
      }
    }
  });
});

for (const engine of HTTP_ENGINES) {
  describe(`mail templates through the outbox (${engine})`, () => {
    let smtp: SmtpSink;
    let server: TestServer;
    let custom: string;
    before(async () => {
      custom = mkdtempSync(join(tmpdir(), 'myelin-templates-'));
      writeFileSync(join(custom, 'password_reset.txt'), 'CUSTOM RESET for {{ server_name }}: {{ link }} / {{ code }} / {{ app_name }}\n');
      writeFileSync(join(custom, 'password_reset.html'), '<p>Custom {{ link }} {{ app_name }}</p>\n');
      writeFileSync(join(custom, 'add_threepid.de.txt'), 'DEUTSCH {{ link }}\n');
      smtp = await SmtpSink.started();
      server = await startTestServer(engine, {
        email: smtp.emailConfig({ app_name: 'Myelin & <Friends>' }),
        outbox: { poll_interval: 100 },
        templates: { custom_template_directory: custom },
      });
    });
    after(async () => {
      await server.close();
      await smtp.stop();
      rmSync(custom, { recursive: true, force: true });
    });

    it('uses a template from custom_template_directory over the shipped one', async () => {
      await server.hs.services.outbox.enqueue(mail('custom@example.org', { template: 'password_reset' }));
      const m = await smtp.waitFor((x) => x.envelopeTo.includes('custom@example.org'));
      assert.equal(m.text.trim(), `CUSTOM RESET for test.local: ${LINK} / ${CODE} / Myelin & <Friends>`);
      assert.equal(m.html.trim(), `<p>Custom ${LINK} Myelin &amp; &lt;Friends&gt;</p>`);
      assert.equal(m.subject, '[test.local] Password reset');
      // Other templates still come from the shipped set.
      await server.hs.services.outbox.enqueue(mail('shipped@example.org'));
      const shipped = await smtp.waitFor((x) => x.envelopeTo.includes('shipped@example.org'));
      assert.match(shipped.text, /Confirm your email address/);
    });

    it('follows Accept-Language when a translation exists', async () => {
      const outbox = server.hs.services.outbox;
      await outbox.enqueue(mail('fr@example.org', { acceptLanguage: 'fr-CH, fr;q=0.9, en;q=0.8' }));
      await outbox.enqueue(mail('en@example.org', { acceptLanguage: 'en-GB, fr;q=0.9' }));
      await outbox.enqueue(mail('ja@example.org', { acceptLanguage: 'ja, de;q=0.1' }));
      await outbox.enqueue(mail('de@example.org', { template: 'add_threepid', acceptLanguage: 'de-AT' }));
      const fr = await smtp.waitFor((x) => x.envelopeTo.includes('fr@example.org'));
      assert.match(fr.subject, /Confirmez votre adresse e-mail/);
      assert.match(fr.text, /Confirmez votre adresse e-mail/);
      assert.match(fr.html, /<html lang="fr">/);
      assert.ok(fr.text.includes(LINK) && fr.html.includes(CODE));
      const en = await smtp.waitFor((x) => x.envelopeTo.includes('en@example.org'));
      assert.equal(en.subject, '[test.local] Validate your email');
      assert.match(en.text, /Confirm your email address/);
      const ja = await smtp.waitFor((x) => x.envelopeTo.includes('ja@example.org'));
      assert.match(ja.text, /Confirm your email address/, 'no Japanese or German registration mail: the default');
      const de = await smtp.waitFor((x) => x.envelopeTo.includes('de@example.org'));
      assert.equal(de.text.trim(), `DEUTSCH ${LINK}`, 'an admin translation in the custom directory is picked up');
      assert.match(de.html, /Add this address to your account/, 'the HTML part falls back to the default when only the text is translated');
    });
  });

  describe(`email logging (${engine})`, () => {
    async function withLog(email: Record<string, unknown>, level: string, fn: (hs: Awaited<ReturnType<typeof startHomeserver>>, lines: string[]) => Promise<void>) {
      const { logger, lines } = capturedLog(level);
      const db = await freshDatabase(engine);
      const config = testConfig(await freePort(), db.database, { email, outbox: { poll_interval: 100 }, log_level: level });
      const hs = await startHomeserver(config, { logger });
      try {
        await fn(hs, lines);
      } finally {
        await hs.close();
        await db.drop();
      }
    }

    it('transport log prints the mail, link included, at info level and sends nothing', async () => {
      const smtp = await SmtpSink.started();
      try {
        await withLog(smtp.emailConfig({ transport: 'log' }), 'info', async (hs, lines) => {
          await hs.services.outbox.enqueue(mail('dev@example.org'), { dedupeKey: 'log:1' });
          await until(() => lines.some((l) => l.includes('transport: log')), 'the mail in the log', 2000).catch(() => undefined);
          const line = lines.find((l) => l.includes('transport: log'));
          assert.ok(line, 'the mail is logged');
          const entry = JSON.parse(line) as { level: number; mail: { to: string; text: string } };
          assert.equal(entry.level, 30);
          assert.equal(entry.mail.to, 'dev@example.org');
          assert.ok(entry.mail.text.includes(LINK) && entry.mail.text.includes(CODE));
          let row = await hs.services.store.outbox.findByDedupeKey('log:1');
          await until(async () => Boolean((row = await hs.services.store.outbox.findByDedupeKey('log:1'))?.sent_ts), 'the logged mail to be marked sent', 1000);
          assert.ok(row?.sent_ts);
        });
        assert.equal(smtp.messages.length, 0);
      } finally {
        await smtp.stop();
      }
    });

    it('transport smtp never logs the link or the code, even at trace level, even when sending fails', async () => {
      const smtp = await SmtpSink.started();
      try {
        await withLog(smtp.emailConfig(), 'trace', async (hs, lines) => {
          smtp.rejectRecipients((a) => a === 'bounce@example.org');
          await hs.services.outbox.enqueue(mail('ok@example.org'));
          await hs.services.outbox.enqueue(mail('bounce@example.org'));
          await smtp.waitFor((x) => x.envelopeTo.includes('ok@example.org'));
          // The sink has the mail a moment before the sender hears its 250 and logs the send.
          const logged = (what: string) => lines.some((l) => l.includes(what));
          await until(() => logged('giving up') && logged('message sent'), 'both outcomes in the log', 5000).catch(() => undefined);
          assert.ok(lines.some((l) => l.includes('message sent')));
          assert.ok(lines.some((l) => l.includes('giving up')));
          const all = lines.join('');
          assert.ok(!all.includes('s3cr3tlinktoken') && !all.includes(CODE), 'no secret in the log');
          assert.ok(!all.includes('ok@example.org'), 'recipients are masked');
        });
      } finally {
        await smtp.stop();
      }
    });
  });
}
