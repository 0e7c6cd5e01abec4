import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import { identityUnbindDedupeKey } from '../src/services/threepid/identity-unbind.js';
import type { ApiResponse } from './helpers/api.js';
import { FakeIdentityServer, canonicalJson } from './helpers/fake-identity-server.js';
import { afterAttempts, outboxRow, outboxSettled, stepOutbox } from './helpers/outbox.js';
import { ENGINES, HTTP_ENGINES, ManualClock, startTestServer, type Engine, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

const PW = 'correct horse battery';
const UNBIND_PATH = '/_matrix/identity/v2/3pid/unbind';
type Session = { user_id: string; access_token: string; device_id: string };

let users = 0;
const nextName = (prefix: string) => `${prefix}${++users}`;

/** A homeserver trusting the fake identity servers, which fetch its key from it. */
async function startWith(engine: Engine, fakes: FakeIdentityServer[], overrides: Record<string, unknown> = {}, outboxClock?: ManualClock): Promise<TestServer> {
  const server = await startTestServer(
    engine,
    { trusted_third_party_id_servers: fakes.map((f) => f.url), identity_server_timeout: '1s', ...overrides },
    outboxClock ? { outboxClock } : {},
  );
  for (const fake of fakes) fake.homeserverUrl = server.url;
  return server;
}

/** Binds `address` to the user at `fake` through Myelin's POST /account/3pid/bind. */
async function bindAt(server: TestServer, fake: FakeIdentityServer, who: Session, address: string): Promise<void> {
  const sid = `sid-${Math.random().toString(36).slice(2)}`;
  fake.sessions.set(sid, { medium: 'email', address });
  const res = await server.api.post('/v3/account/3pid/bind', { sid, client_secret: 'cs', id_server: fake.name, id_access_token: 'is-token' }, { token: who.access_token });
  assert.equal(res.status, 200, JSON.stringify(res.body));
}

/** Puts the address on the account, as a validated 3PID. */
async function addToAccount(server: TestServer, who: Session, address: string): Promise<void> {
  const now = Date.now();
  assert.equal(await server.hs.services.store.threepids.add({ medium: 'email', address, user_id: who.user_id, validated_ts: now, added_ts: now }), true);
}

async function bindings(server: TestServer, who: Session) {
  return (await server.hs.services.store.threepidIdServers.list(who.user_id)).map((b) => `${b.address}@${b.id_server}`).sort();
}

async function accountAddresses(server: TestServer, who: Session) {
  const res = await server.api.get<{ threepids: { address: string }[] }>('/v3/account/3pid', { token: who.access_token });
  return res.body.threepids.map((t) => t.address).sort();
}

async function deactivate(server: TestServer, who: Session, body: Record<string, unknown> = {}): Promise<ApiResponse> {
  const first = await server.api.post('/v3/account/deactivate', body, { token: who.access_token });
  if (first.status !== 401) return first;
  return server.api.post('/v3/account/deactivate', { ...body, auth: { type: 'm.login.password', session: first.body.session, password: PW } }, { token: who.access_token });
}

/** The good unbinds a fake received, as `address mxid`. */
const calls = (fake: FakeIdentityServer) => fake.verified.map((c) => `${c.body.threepid?.address} ${c.body.mxid}`).sort();

for (const engine of HTTP_ENGINES) {
  describe(`unbinding at identity servers (${engine})`, () => {
    let server: TestServer;
    let a: FakeIdentityServer;
    let b: FakeIdentityServer;
    before(async () => {
      a = await FakeIdentityServer.start();
      b = await FakeIdentityServer.start();
      server = await startWith(engine, [a, b]);
    });
    after(async () => {
      await server.close();
      await a.stop();
      await b.stop();
    });
    afterEach(() => {
      for (const fake of [a, b]) {
        fake.mode = { kind: 'ok' };
        fake.unbinds.length = 0;
      }
    });

    it('the fake identity server refuses unbinds not signed by the homeserver of the user for it', async () => {
      const content = { mxid: '@x:test.local', threepid: { medium: 'email', address: 'x@example.org' } };
      const post = (authorization: string, body: unknown = content) =>
        fetch(`${a.url}${UNBIND_PATH}`, { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const keyId = server.hs.services.signingKey.keyId;
      const { privateKey } = generateKeyPairSync('ed25519');
      const forged = sign(null, Buffer.from(canonicalJson({ method: 'POST', uri: UNBIND_PATH, origin: 'test.local', destination: a.name, content })), privateKey).toString('base64');
      const header = (sig: string, destination = a.name) => `X-Matrix origin="test.local",destination="${destination}",key="${keyId}",sig="${sig}"`;
      assert.equal((await post(header(forged))).status, 403, 'signed by another key');
      const real = server.hs.services.signingKey.sign(Buffer.from(canonicalJson({ method: 'POST', uri: UNBIND_PATH, origin: 'test.local', destination: a.name, content })));
      const realSig = Buffer.from(real).toString('base64').replace(/=+$/, '');
      assert.equal((await post(header(realSig), { ...content, mxid: '@y:test.local' })).status, 403, 'another body');
      assert.equal((await post(header(realSig, b.name))).status, 403, 'another destination');
      assert.equal((await post(`Bearer ${realSig}`)).status, 403, 'not X-Matrix');
      assert.equal(a.verified.length, 0);
      assert.equal((await post(header(realSig))).status, 200, 'the right signature is accepted');
      assert.equal(a.verified.length, 1);
    });

    it('remembers where an address was bound, unbinds it there with a signed request and forgets it; the address stays on the account', async () => {
      const who = await server.api.register(nextName('binder'), PW);
      await addToAccount(server, who, 'alice@example.org');
      // The identity server names the address as it validated it; it is kept in canonical form.
      await bindAt(server, a, who, 'Alice@Example.ORG');
      assert.deepEqual(await bindings(server, who), [`alice@example.org@${a.name}`]);

      const res = await server.api.post('/v3/account/3pid/unbind', { medium: 'email', address: 'alice@example.org' }, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body, { id_server_unbind_result: 'success' });
      assert.equal(a.unbinds.length, 1);
      assert.deepEqual(a.verified[0]!.body, { mxid: who.user_id, threepid: { medium: 'email', address: 'alice@example.org' } });
      assert.equal(a.verified[0]!.auth.origin, 'test.local');
      assert.equal(a.verified[0]!.auth.destination, a.name);
      assert.equal(a.verified[0]!.auth.key, server.hs.services.signingKey.keyId);
      assert.equal(b.unbinds.length, 0);
      assert.deepEqual(await bindings(server, who), []);
      assert.deepEqual(await accountAddresses(server, who), ['alice@example.org']);

      // Forgotten: nothing is known any more, so nothing is called.
      const again = await server.api.post('/v3/account/3pid/unbind', { medium: 'email', address: 'alice@example.org' }, { token: who.access_token });
      assert.deepEqual(again.body, { id_server_unbind_result: 'no-support' });
      assert.equal(a.unbinds.length, 1);
    });

    it('answers no-support when no identity server is known, and when the identity server does not unbind (400, 404, 501)', async () => {
      const who = await server.api.register(nextName('nosupport'), PW);
      const none = await server.api.post('/v3/account/3pid/unbind', { medium: 'email', address: 'never-bound@example.org' }, { token: who.access_token });
      assert.equal(none.status, 200);
      assert.deepEqual(none.body, { id_server_unbind_result: 'no-support' });
      assert.equal(a.unbinds.length + b.unbinds.length, 0);

      for (const status of [404, 400, 501] as const) {
        await bindAt(server, a, who, `old${status}@example.org`);
        a.mode = { kind: 'unsupported', status };
        const res = await server.api.post('/v3/account/3pid/unbind', { medium: 'email', address: `old${status}@example.org` }, { token: who.access_token });
        assert.equal(res.status, 200, `${status}: ${JSON.stringify(res.body)}`);
        assert.deepEqual(res.body, { id_server_unbind_result: 'no-support' });
        assert.deepEqual(a.verified.at(-1)?.body, { mxid: who.user_id, threepid: { medium: 'email', address: `old${status}@example.org` } }, 'it was asked, with a good signature');
        // A definitive answer: the binding is forgotten, as Synapse does.
        assert.deepEqual(await bindings(server, who), []);
      }

      // One success and one no-support is no-support.
      a.mode = { kind: 'ok' };
      b.mode = { kind: 'unsupported', status: 404 };
      await bindAt(server, a, who, 'both@example.org');
      await bindAt(server, b, who, 'both@example.org');
      const mixed = await server.api.post('/v3/account/3pid/unbind', { medium: 'email', address: 'both@example.org' }, { token: who.access_token });
      assert.deepEqual(mixed.body, { id_server_unbind_result: 'no-support' });
      assert.equal(b.verified.length, 1);
    });

    it('refuses an identity server that is not trusted, calling nothing and changing nothing; never calls one no longer trusted', async () => {
      const who = await server.api.register(nextName('untrusted'), PW);
      await addToAccount(server, who, 'kept@example.org');
      await bindAt(server, a, who, 'kept@example.org');
      const body = { medium: 'email', address: 'kept@example.org', id_server: 'evil.example' };
      for (const path of ['/v3/account/3pid/unbind', '/v3/account/3pid/delete']) {
        const res = await server.api.post(path, body, { token: who.access_token });
        assert.equal(res.status, 400, path);
        assert.equal(res.body.errcode, 'M_SERVER_NOT_TRUSTED', path);
      }
      const bind = await server.api.post('/v3/account/3pid/bind', { sid: 's', client_secret: 'cs', id_server: '127.0.0.1:1', id_access_token: 't' }, { token: who.access_token });
      assert.equal(bind.body.errcode, 'M_SERVER_NOT_TRUSTED');
      const deact = await deactivate(server, who, { id_server: 'evil.example' });
      assert.equal(deact.status, 400);
      assert.equal(deact.body.errcode, 'M_SERVER_NOT_TRUSTED');
      assert.equal((await server.api.get('/v3/account/whoami', { token: who.access_token })).status, 200, 'still active');
      assert.deepEqual(await accountAddresses(server, who), ['kept@example.org']);
      assert.deepEqual(await bindings(server, who), [`kept@example.org@${a.name}`]);
      assert.equal(a.unbinds.length + b.unbinds.length, 0);

      // Bound at an identity server the admin has since stopped trusting: not called, not forgotten.
      await server.hs.services.store.threepidIdServers.add({ user_id: who.user_id, medium: 'email', address: 'gone@example.org', id_server: 'gone.example' });
      const gone = await server.api.post('/v3/account/3pid/unbind', { medium: 'email', address: 'gone@example.org' }, { token: who.access_token });
      assert.deepEqual(gone.body, { id_server_unbind_result: 'no-support' });
      assert.deepEqual(await bindings(server, who), [`gone@example.org@gone.example`, `kept@example.org@${a.name}`]);
    });

    it('gives up on an identity server that does not answer within identity_server_timeout, and passes an identity server\'s own error on', async () => {
      const who = await server.api.register(nextName('slow'), PW);
      await addToAccount(server, who, 'slow@example.org');
      await bindAt(server, a, who, 'slow@example.org');
      a.mode = { kind: 'hang' };
      for (const path of ['/v3/account/3pid/unbind', '/v3/account/3pid/delete']) {
        const started = Date.now();
        const res = await server.api.post(path, { medium: 'email', address: 'slow@example.org' }, { token: who.access_token, expectServerError: true });
        const took = Date.now() - started;
        assert.equal(res.status, 504, JSON.stringify(res.body));
        assert.equal(res.body.errcode, 'M_UNKNOWN');
        assert.ok(took >= 900 && took < 4000, `${path} answered after ${took} ms`);
      }
      // Nothing was done: the binding is kept, and so is the address.
      assert.deepEqual(await bindings(server, who), [`slow@example.org@${a.name}`]);
      assert.deepEqual(await accountAddresses(server, who), ['slow@example.org']);

      a.mode = { kind: 'error', errcode: 'M_TERMS_NOT_SIGNED' };
      const refused = await server.api.post('/v3/account/3pid/unbind', { medium: 'email', address: 'slow@example.org' }, { token: who.access_token });
      assert.equal(refused.status, 403);
      assert.equal(refused.body.errcode, 'M_TERMS_NOT_SIGNED');
      assert.deepEqual(await bindings(server, who), [`slow@example.org@${a.name}`]);

      a.mode = { kind: 'ok' };
      const done = await server.api.post('/v3/account/3pid/delete', { medium: 'email', address: 'slow@example.org' }, { token: who.access_token });
      assert.deepEqual(done.body, { id_server_unbind_result: 'success' });
      assert.deepEqual(await accountAddresses(server, who), []);
      assert.deepEqual(await bindings(server, who), []);
    });

    it('deletes with id_server: unbinds there only; without: at every identity server the address was bound to', async () => {
      const who = await server.api.register(nextName('deleter'), PW);
      await addToAccount(server, who, 'one@example.org');
      await addToAccount(server, who, 'two@example.org');
      await bindAt(server, a, who, 'one@example.org');
      await bindAt(server, a, who, 'two@example.org');
      await bindAt(server, b, who, 'two@example.org');

      const given = await server.api.post('/v3/account/3pid/delete', { medium: 'email', address: 'one@example.org', id_server: b.name }, { token: who.access_token });
      assert.equal(given.status, 200, JSON.stringify(given.body));
      assert.deepEqual(given.body, { id_server_unbind_result: 'success' });
      assert.deepEqual(calls(b), [`one@example.org ${who.user_id}`]);
      assert.equal(a.unbinds.length, 0, 'not at the server it was bound to, since another was named');
      assert.deepEqual(await accountAddresses(server, who), ['two@example.org']);
      // The binding at the other identity server is still known (deactivation will unbind it).
      assert.deepEqual(await bindings(server, who), [`one@example.org@${a.name}`, `two@example.org@${a.name}`, `two@example.org@${b.name}`].sort());

      const everywhere = await server.api.post('/v3/account/3pid/delete', { medium: 'email', address: 'two@example.org' }, { token: who.access_token });
      assert.deepEqual(everywhere.body, { id_server_unbind_result: 'success' });
      assert.deepEqual(calls(a), [`two@example.org ${who.user_id}`]);
      assert.deepEqual(calls(b), [`one@example.org ${who.user_id}`, `two@example.org ${who.user_id}`]);
      assert.deepEqual(await accountAddresses(server, who), []);
      assert.deepEqual(await bindings(server, who), [`one@example.org@${a.name}`]);
    });
  });
}

for (const engine of ENGINES) {
  // Both engines: deactivation queues unbinds in the outbox within its transaction, and the worker claims them.
  describe(`deactivation unbinds at identity servers (${engine})`, () => {
    let a: FakeIdentityServer;
    let b: FakeIdentityServer;
    before(async () => {
      a = await FakeIdentityServer.start();
      b = await FakeIdentityServer.start();
    });
    after(async () => {
      await a.stop();
      await b.stop();
    });
    afterEach(async () => {
      for (const fake of [a, b]) {
        fake.mode = { kind: 'ok' };
        fake.unbinds.length = 0;
      }
    });

    it('unbinds every binding where it was made, and with id_server every address there too; success only when all are unbound', async () => {
      const server = await startWith(engine, [a, b]);
      try {
        const plain = await server.api.register(nextName('leaver'), PW);
        await addToAccount(server, plain, 'x@example.org');
        await addToAccount(server, plain, 'unbound@example.org');
        await bindAt(server, a, plain, 'x@example.org');
        await bindAt(server, b, plain, 'y@example.org');
        const res = await deactivate(server, plain);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.deepEqual(res.body, { id_server_unbind_result: 'success' });
        assert.deepEqual(calls(a), [`x@example.org ${plain.user_id}`]);
        assert.deepEqual(calls(b), [`y@example.org ${plain.user_id}`]);
        assert.deepEqual(await bindings(server, plain), []);
        assert.equal((await server.api.get('/v3/account/whoami', { token: plain.access_token })).status, 401);

        // id_server given: every address of the account and every bound one is unbound there, and each binding where it was made.
        a.unbinds.length = 0;
        b.unbinds.length = 0;
        const named = await server.api.register(nextName('leaver'), PW);
        await addToAccount(server, named, 'z@example.org');
        await bindAt(server, b, named, 'w@example.org');
        const res2 = await deactivate(server, named, { id_server: a.name });
        assert.deepEqual(res2.body, { id_server_unbind_result: 'success' });
        assert.deepEqual(calls(a), [`w@example.org ${named.user_id}`, `z@example.org ${named.user_id}`]);
        assert.deepEqual(calls(b), [`w@example.org ${named.user_id}`]);

        // An identity server that does not unbind: no-support, and nothing to retry.
        const third = await server.api.register(nextName('leaver'), PW);
        await bindAt(server, a, third, 'v@example.org');
        a.mode = { kind: 'unsupported', status: 404 };
        const res3 = await deactivate(server, third);
        assert.deepEqual(res3.body, { id_server_unbind_result: 'no-support' });
        assert.equal(await outboxRow(server, identityUnbindDedupeKey(third.user_id, a.name, 'email', 'v@example.org')), undefined);

        // Nothing bound anywhere: success (the spec: nothing to unbind).
        const none = await server.api.register(nextName('leaver'), PW);
        await addToAccount(server, none, 'only-here@example.org');
        const before = a.unbinds.length + b.unbinds.length;
        assert.deepEqual((await deactivate(server, none)).body, { id_server_unbind_result: 'success' });
        assert.equal(a.unbinds.length + b.unbinds.length, before);
        assert.equal(await server.hs.services.store.outbox.nextDueTs(['identity-unbind']), undefined, 'nothing queued');
      } finally {
        await server.close();
      }
    });

    it('does not wait for identity servers that are down or silent: their unbinds are queued and retried with backoff until they answer', async () => {
      const clock = new ManualClock();
      const server = await startWith(engine, [a, b], {}, clock);
      try {
        const who = await server.api.register(nextName('outage'), PW);
        await bindAt(server, a, who, 'down@example.org');
        await bindAt(server, b, who, 'silent@example.org');
        await a.stop();
        b.mode = { kind: 'hang' };

        const started = Date.now();
        const res = await deactivate(server, who);
        const took = Date.now() - started;
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.deepEqual(res.body, { id_server_unbind_result: 'no-support' }, 'not unbound now: not success');
        assert.ok(took < 4000, `deactivation took ${took} ms`);
        assert.equal((await server.api.get('/v3/account/whoami', { token: who.access_token })).status, 401, 'deactivated all the same');
        assert.deepEqual(await bindings(server, who), []);

        const downKey = identityUnbindDedupeKey(who.user_id, a.name, 'email', 'down@example.org');
        const silentKey = identityUnbindDedupeKey(who.user_id, b.name, 'email', 'silent@example.org');
        // The worker tries each at once, then waits 1 s, then 2 s (less up to 15% jitter) before the next tries.
        const first = await afterAttempts(server, downKey, 1);
        assert.ok(first.last_error && first.sent_ts === null && first.next_attempt_ts! > clock.now(), 'kept for a later try');
        assert.equal(first.payload!.includes('down@example.org'), false, 'the address is sealed at rest');
        await afterAttempts(server, silentKey, 1);
        const wait1 = first.next_attempt_ts! - clock.now();
        assert.ok(wait1 >= 850 && wait1 <= 1000, `first wait ${wait1} ms`);
        stepOutbox(clock, 1000, server);
        const second = await afterAttempts(server, downKey, 2);
        const wait2 = second.next_attempt_ts! - clock.now();
        assert.ok(wait2 >= 1700 && wait2 <= 2000, `second wait ${wait2} ms`);
        await afterAttempts(server, silentKey, 2);
        assert.equal(a.unbinds.length, 0);
        assert.equal(b.verified.length, 3, 'the silent one was asked at deactivation and at each try');

        // Both come back; the next tries unbind, signed like the first.
        await a.start();
        b.mode = { kind: 'ok' };
        stepOutbox(clock, 2000, server);
        await until(() => a.verified.length === 1 && b.verified.length === 4, 'both identity servers to be asked again');
        await outboxSettled(server, ['identity-unbind']);
        assert.deepEqual(a.verified[0]!.body, { mxid: who.user_id, threepid: { medium: 'email', address: 'down@example.org' } });
        assert.deepEqual(b.verified.at(-1)!.body, { mxid: who.user_id, threepid: { medium: 'email', address: 'silent@example.org' } });
        for (const key of [downKey, silentKey]) {
          const row = await outboxRow(server, key);
          assert.ok(row?.sent_ts !== null && row?.payload === null, `${key} sent and forgotten`);
          assert.equal(row?.attempts, 3);
        }
      } finally {
        await server.close();
      }
    });
  });
}
