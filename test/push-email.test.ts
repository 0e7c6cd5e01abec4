import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../src/config/load.js';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';
import type { ReceivedMail } from './helpers/smtp.js';
import { codeOf, followLink, openLink, secret, startEmailEnv, type EmailEnv } from './helpers/threepid-email.js';
import { until } from './helpers/until.js';

type Session = { user_id: string; access_token: string; device_id: string };
const enc = encodeURIComponent;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const BOB_MAIL = 'bob@example.org';
const DELAY_MS = 1000;
const isNotification = (m: ReceivedMail) => m.envelopeTo.includes(BOB_MAIL) && m.header('list-unsubscribe') !== undefined;

// The pusher's progress moves with the queued mail in one transaction (a compare-and-set): both engines.
for (const engine of ENGINES) {
  describe(`email pushers mail unread notifications (${engine})`, () => {
    let env: EmailEnv;
    let alice: Session;
    let bob: Session;
    let roomId: string;
    let txn = 0;
    before(async () => {
      env = await startEmailEnv(engine, {
        email: { enable_notifs: true, notif_delay_before_mail: DELAY_MS, client_base_url: 'https://client.example/' },
        outbox: { poll_interval: 500 },
      });
      const { api } = env.server;
      alice = await api.register('alice');
      await api.put(`/v3/profile/${enc(alice.user_id)}/displayname`, { displayname: 'Alice <A.>' }, { token: alice.access_token });
      bob = await registerWithEmail(env, 'bob', BOB_MAIL);
      roomId = await createRoom('Lunch & Plans');
    });
    after(async () => {
      await env?.close();
    });

    const createRoom = async (name: string) => {
      const { api } = env.server;
      const created = await api.post<{ room_id: string }>('/v3/createRoom', { name, preset: 'public_chat' }, { token: alice.access_token });
      assert.equal(created.status, 200);
      assert.equal((await api.post(`/v3/join/${enc(created.body.room_id)}`, {}, { token: bob.access_token })).status, 200);
      return created.body.room_id;
    };
    const send = async (room: string, content: Record<string, unknown>, type = 'm.room.message') => {
      const res = await env.server.api.put<{ event_id: string }>(`/v3/rooms/${enc(room)}/send/${type}/t${++txn}`, content, { token: alice.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.event_id;
    };
    const notifications = () => env.smtp.messages.filter(isNotification);
    /** Waits for the n-th notification mail, then a while longer to catch one too many. */
    const nthMail = async (n: number) => {
      await until(() => notifications().length >= n, `notification mail ${n}`, 15_000);
      await sleep(DELAY_MS * 2);
      assert.equal(notifications().length, n, 'exactly one mail');
      return notifications()[n - 1]!;
    };

    it('gives an account registered with an email address an email pusher for it (notif_for_new_users)', async () => {
      const res = await env.server.api.get<{ pushers: Record<string, unknown>[] }>('/v3/pushers', { token: bob.access_token });
      assert.deepEqual(
        res.body.pushers.map((p) => [p.kind, p.app_id, p.pushkey]),
        [['email', 'm.email', BOB_MAIL]],
      );
      const aliceRes = await env.server.api.get<{ pushers: unknown[] }>('/v3/pushers', { token: alice.access_token });
      assert.deepEqual(aliceRes.body.pushers, [], 'no address, no pusher');
    });

    it('mails once, after the delay, the room, the sender and the messages, escaped in HTML, encrypted ones unread', async () => {
      const sentAt = Date.now();
      const first = await send(roomId, { msgtype: 'm.text', body: 'soup <b>today</b>?' });
      await send(roomId, { algorithm: 'm.megolm.v1.aes-sha2', ciphertext: 'AAAA', sender_key: 'k', session_id: 's', device_id: 'D' }, 'm.room.encrypted');
      const mail = await nthMail(1);
      assert.ok(Date.now() - sentAt >= DELAY_MS, 'not before the delay');
      assert.equal(mail.subject, '[Matrix] You have messages on Matrix in the Lunch & Plans room...');
      assert.match(mail.text, /Alice <A\.>: soup <b>today<\/b>\?/);
      assert.match(mail.text, /Alice <A\.>: \(encrypted message\)/);
      assert.ok(mail.html.includes('soup &lt;b&gt;today&lt;/b&gt;?'), 'the body is escaped');
      assert.ok(!mail.html.includes('<b>today'), 'no markup from the message');
      assert.ok(mail.html.includes('Alice &lt;A.&gt;') && mail.html.includes('Lunch &amp; Plans'));
      assert.ok(mail.html.includes('Encrypted message'));
      assert.ok(mail.text.includes(`https://client.example/#/room/${roomId}`), 'links to client_base_url');
      assert.ok(mail.html.includes(`https://client.example/#/room/${roomId}/${first}`), 'links to the message');
      assert.match(mail.header('list-unsubscribe') ?? '', /^<http:\/\/[^>]+\/_synapse\/client\/unsubscribe\?access_token=[^&>]+&app_id=m.email&pushkey=bob%40example.org>$/);
      assert.equal(mail.header('list-unsubscribe-post'), 'List-Unsubscribe=One-Click');
    });

    it('mails nothing for a message read before the delay, and then only what is unread', async () => {
      const read = await send(roomId, { msgtype: 'm.text', body: 'already read' });
      const receipt = await env.server.api.post(`/v3/rooms/${enc(roomId)}/receipt/m.read/${enc(read)}`, {}, { token: bob.access_token });
      assert.equal(receipt.status, 200);
      await sleep(DELAY_MS * 3);
      assert.equal(notifications().length, 1, 'no mail for a read message');
      await send(roomId, { msgtype: 'm.text', body: 'still unread' });
      const mail = await nthMail(2);
      assert.ok(mail.text.includes('still unread'));
      assert.ok(!mail.text.includes('already read') && !mail.text.includes('soup'), 'only what was not read or mailed');
      assert.equal(mail.subject, '[Matrix] You have a message on Matrix from Alice <A.> in the Lunch & Plans room...');
    });

    it('throttles the room: a further message waits (Synapse: the delay, then a day)', async () => {
      await send(roomId, { msgtype: 'm.text', body: 'throttled' });
      await sleep(DELAY_MS * 3);
      assert.equal(notifications().length, 2, 'the room waits after its second mail');
    });

    it('a mail queued when the SMTP server refuses it is sent once after a restart', async () => {
      const other = await createRoom('Second room');
      env.smtp.refuse(true);
      await send(other, { msgtype: 'm.text', body: 'through a restart' });
      const store = () => env.server.hs.services.store;
      await until(async () => (await store().outbox.pendingByChannel()).some((c) => c.channel === 'email'), 'the mail queued', 15_000);
      await env.server.restart();
      env.smtp.refuse(false);
      const mail = await nthMail(3);
      assert.ok(mail.text.includes('through a restart'));
      // The throttled room's waiting notification rides along in the mail another room made due.
      assert.ok(mail.text.includes('throttled'));
      assert.equal(mail.subject, '[Matrix] You have messages on Matrix in the Second room room and others...');
    });

    it('unsubscribes with the link: forged links are refused alike, GET only asks, POST deletes the pusher', async () => {
      const link = /^<(.+)>$/.exec(notifications()[0]!.header('list-unsubscribe')!)![1]!;
      const url = new URL(link);
      const forged = (param: string, value: string) => {
        const u = new URL(url);
        u.searchParams.set(param, value);
        return u.href;
      };
      const token = url.searchParams.get('access_token')!;
      for (const bad of [forged('access_token', `${token.slice(0, -2)}xx`), forged('pushkey', 'carol@example.org'), forged('app_id', 'other'), forged('access_token', 'v1.QA.x')]) {
        const res = await openLink(bad);
        assert.equal(res.status, 400);
        assert.match(res.html, /This link cannot be used/);
        const post = await fetch(bad, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
        assert.equal(post.status, 400);
      }
      const pushers = async () => (await env.server.api.get<{ pushers: unknown[] }>('/v3/pushers', { token: bob.access_token })).body.pushers.length;
      const page = await openLink(link);
      assert.equal(page.status, 200);
      assert.equal(await pushers(), 1, 'opening the link changes nothing');
      const done = await followLink(link);
      assert.equal(done.status, 200);
      assert.match(done.html, /Unsubscribed/);
      assert.equal(await pushers(), 0);
      // A mail client's one-click POST of a link whose pusher is gone: done, nothing told.
      const again = await fetch(link, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
      assert.equal(again.status, 200);
      await send(roomId, { msgtype: 'm.text', body: 'after unsubscribing' });
      await sleep(DELAY_MS * 3);
      assert.equal(notifications().length, 3, 'no pusher, no mail');
    });

    it('a pusher set with POST /pushers/set mails only what notifies after it, and goes with its address', async () => {
      const { api } = env.server;
      const pusher = { kind: 'email', app_id: 'org.example.mail', pushkey: 'Bob@Example.org', app_display_name: 'Mail', device_display_name: 'bob', lang: 'en', data: {} };
      assert.equal((await api.post('/v3/pushers/set', pusher, { token: bob.access_token })).status, 200);
      await sleep(DELAY_MS * 3);
      assert.equal(notifications().length, 3, 'the message sent before the pusher is not mailed');
      const other = await createRoom('Third room');
      await send(other, { msgtype: 'm.text', body: 'for the new pusher' });
      const mail = await nthMail(4);
      assert.ok(mail.text.includes('for the new pusher') && !mail.text.includes('after unsubscribing'));
      assert.match(mail.header('list-unsubscribe') ?? '', /app_id=org.example.mail&pushkey=bob%40example.org>$/);
      const removed = await api.post('/v3/account/3pid/delete', { medium: 'email', address: BOB_MAIL }, { token: bob.access_token });
      assert.equal(removed.status, 200, JSON.stringify(removed.body));
      const left = await api.get<{ pushers: unknown[] }>('/v3/pushers', { token: bob.access_token });
      assert.deepEqual(left.body.pushers, [], 'no address, no email pusher');
    });
  });
}

describe('email pushers: two processes on one PostgreSQL database', () => {
  let env: EmailEnv;
  let second: TestServer;
  before(async () => {
    const overrides = { email: { enable_notifs: true, notif_delay_before_mail: DELAY_MS } };
    env = await startEmailEnv('postgres', overrides);
    second = await startTestServer('postgres', { email: env.smtp.emailConfig(overrides.email) }, { database: env.server.config.database as unknown as Record<string, unknown> });
  });
  after(async () => {
    await second?.close();
    await env?.close();
  });

  it('mails each notification once, whichever process recorded it and whichever mails it', async () => {
    const bob = await registerWithEmail(env, 'bob', BOB_MAIL);
    const alice = await second.api.register('alice');
    const roomId = (await second.api.post<{ room_id: string }>('/v3/createRoom', { name: 'Shared', preset: 'public_chat' }, { token: alice.access_token })).body.room_id;
    assert.equal((await env.server.api.post(`/v3/join/${enc(roomId)}`, {}, { token: bob.access_token })).status, 200);
    for (const [i, api] of [env.server.api, second.api, env.server.api, second.api].entries()) {
      const res = await api.put(`/v3/rooms/${enc(roomId)}/send/m.room.message/two${i}`, { msgtype: 'm.text', body: `from process ${i % 2} #${i}` }, { token: alice.access_token });
      assert.equal(res.status, 200);
    }
    await until(() => env.smtp.messages.some(isNotification), 'a notification mail', 20_000);
    await sleep(DELAY_MS * 3);
    const mails = env.smtp.messages.filter(isNotification);
    assert.equal(mails.length, 1, 'one mail, not one per process');
    for (let i = 0; i < 4; i++) assert.ok(mails[0]!.text.includes(`#${i}`), `message ${i} in the mail`);
  });
});

describe('email notification config', () => {
  const base = { server_name: 'example.org', email: { notif_from: 'x <noreply@example.org>' } };
  it("has Synapse's defaults", () => {
    const { email } = parseConfig(base).config;
    assert.deepEqual([email?.enable_notifs, email?.notif_for_new_users, email?.notif_delay_before_mail, email?.notif_template_html, email?.notif_template_text, email?.client_base_url], [false, true, 600_000, 'notif_mail.html', 'notif_mail.txt', undefined]);
    assert.equal(parseConfig({ ...base, email: { ...base.email, notif_delay_before_mail: '1s', client_base_url: 'https://app.example/' } }).config.email?.client_base_url, 'https://app.example');
  });
  it('refuses a client_base_url that is not http(s) and a template outside the template directory', () => {
    assert.throws(() => parseConfig({ ...base, email: { ...base.email, client_base_url: 'javascript:alert(1)' } }), /client_base_url/);
    assert.throws(() => parseConfig({ ...base, email: { ...base.email, notif_template_html: '../secret.html' } }), /notif_template_html/);
  });
});

/** Registers through the email stage (request a code, submit it, complete UIA) by plain HTTP. */
async function registerWithEmail(env: EmailEnv, username: string, address: string): Promise<Session> {
  const { api } = env.server;
  const clientSecret = secret();
  const requested = await api.post<{ sid: string; submit_url: string }>('/v3/register/email/requestToken', { client_secret: clientSecret, email: address, send_attempt: 1 });
  assert.equal(requested.status, 200, JSON.stringify(requested.body));
  const mail = await env.smtp.waitFor((m) => m.envelopeTo.includes(address));
  const submitted = await api.post(new URL(requested.body.submit_url).pathname, { sid: requested.body.sid, client_secret: clientSecret, token: codeOf(mail) });
  assert.equal(submitted.status, 200);
  const first = await api.post('/v3/register', { username, password: 'email-notif-password-1' });
  const done = await api.post<Session>('/v3/register', {
    username,
    password: 'email-notif-password-1',
    auth: { type: 'm.login.email.identity', threepid_creds: { sid: requested.body.sid, client_secret: clientSecret }, session: first.body.session },
  });
  assert.equal(done.status, 200, JSON.stringify(done.body));
  return done.body;
}
