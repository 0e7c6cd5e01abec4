import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { startHomeserver, type Homeserver } from '../src/homeserver.js';
import { MAX_JSON_DEPTH } from '../src/http/input-checks.js';
import { Api } from './helpers/api.js';
import { capturedLog } from './helpers/log.js';
import { ENGINES, HTTP_ENGINES, freePort, freshDatabase, startTestServer, testConfig, type TestServer } from './helpers/server.js';

const PW = 'pw-hardening-1234';
/** A device display name the database refuses once `refuseMarkedDevices` has run: a failure mid-write. */
const REFUSED_NAME = 'refused-by-the-database';

/** Makes the database itself fail any insert or update of a device named REFUSED_NAME (a fault, not a mock). */
async function refuseMarkedDevices(server: { hs: Homeserver }): Promise<void> {
  const { engine, kysely } = server.hs.services.store.db;
  if (engine === 'postgres') {
    await sql`CREATE FUNCTION refuse_marked_device() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`.execute(kysely);
    await sql.raw(`CREATE TRIGGER refuse_marked_device BEFORE INSERT OR UPDATE ON devices FOR EACH ROW WHEN (NEW.display_name = '${REFUSED_NAME}') EXECUTE FUNCTION refuse_marked_device()`).execute(kysely);
  } else {
    for (const event of ['INSERT', 'UPDATE']) {
      await sql.raw(`CREATE TRIGGER refuse_marked_device_${event} BEFORE ${event} ON devices WHEN NEW.display_name = '${REFUSED_NAME}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`).execute(kysely);
    }
  }
}

/** A raw JSON text of objects nested `depth` deep (the outermost is level 1). */
const nestedObjects = (depth: number) => '{"a":'.repeat(depth - 1) + '{}' + '}'.repeat(depth - 1);
/** An object holding arrays, `depth` deep in all. */
const nestedArrays = (depth: number) => '{"a":' + '['.repeat(depth - 1) + ']'.repeat(depth - 1) + '}';

for (const engine of ENGINES) {
  // Both engines: PostgreSQL cannot store U+0000 in text, SQLite can; the edge must refuse it for both.
  describe(`U+0000 and deep nesting are refused at the edge (${engine})`, () => {
    let server: TestServer;
    let token: string;
    const me = '@hardy:test.local';

    before(async () => {
      server = await startTestServer(engine, { registration_shared_secret: 'shared-secret-for-the-test' });
      token = (await server.api.register('hardy', PW, { device_id: 'MAIN' })).access_token;
    });
    after(async () => server.close());

    async function userCount(): Promise<number> {
      return server.hs.services.store.users.countUsers();
    }

    async function available(username: string): Promise<boolean> {
      const res = await server.api.get(`/v3/register/available?username=${username}`);
      assert.ok(res.status === 200 || res.body.errcode === 'M_USER_IN_USE', JSON.stringify(res.body));
      return res.status === 200;
    }

    it('refuses U+0000 in any string of a JSON body with 400 M_BAD_JSON, and writes nothing', async () => {
      const users = await userCount();
      const profile = JSON.stringify((await server.api.get(`/v3/profile/${me}`)).body);
      const presence = JSON.stringify((await server.api.get(`/v3/presence/${me}/status`, { token })).body);
      const openSession = async () => (await server.api.post('/v3/register', { username: 'nul1', password: PW })).body.session as string;
      const cases: [string, string, string, unknown, string | undefined][] = [
        ['login identifier', 'POST', '/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'har\u0000dy' }, password: PW }, undefined],
        ['login password', 'POST', '/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'hardy' }, password: `${PW}\u0000` }, undefined],
        ['register session', 'POST', '/v3/register', { username: 'nul1', password: PW, auth: { type: 'm.login.dummy', session: `${await openSession()}\u0000` } }, undefined],
        ['register username', 'POST', '/v3/register', { username: 'nul1\u0000', password: PW }, undefined],
        ['register device ID', 'POST', '/v3/register', { username: 'nul1', password: PW, device_id: 'D\u0000', auth: { type: 'm.login.dummy', session: await openSession() } }, undefined],
        [
          'register device display name',
          'POST',
          '/v3/register',
          { username: 'nul1', password: PW, initial_device_display_name: 'a\u0000b', auth: { type: 'm.login.dummy', session: await openSession() } },
          undefined,
        ],
        ['displayname', 'PUT', `/v3/profile/${me}/displayname`, { displayname: 'a\u0000b' }, token],
        ['device display name', 'PUT', '/v3/devices/MAIN', { display_name: 'a\u0000b' }, token],
        ['presence status', 'PUT', `/v3/presence/${me}/status`, { presence: 'online', status_msg: 'a\u0000b' }, token],
        ['a key of account data', 'PUT', `/v3/user/${me}/account_data/m.test`, { 'k\u0000': 1 }, token],
        ['deep inside account data', 'PUT', `/v3/user/${me}/account_data/m.test`, { a: { b: [[1, { c: ['x', 'y\u0000'] }]] } }, token],
        ['a push rule pattern', 'PUT', '/v3/pushrules/global/content/myrule', { actions: ['notify'], pattern: 'a\u0000' }, token],
        ['a shared-secret registration', 'POST', '/_synapse/admin/v1/register', { nonce: 'n\u0000', username: 'nul1', password: PW, mac: 'x' }, undefined],
      ];
      for (const [name, method, path, body, auth] of cases) {
        const res = await server.api.request(method, path, body, { token: auth });
        assert.equal(res.status, 400, `${name}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.errcode, 'M_BAD_JSON', `${name}: ${JSON.stringify(res.body)}`);
      }
      assert.equal(await userCount(), users, 'no account was created');
      assert.ok(await available('nul1'), 'the username is still free');
      const devices = await server.api.get<{ devices: { display_name?: string }[] }>('/v3/devices', { token });
      assert.deepEqual(devices.body.devices.map((d) => d.display_name), [undefined]);
      assert.equal(JSON.stringify((await server.api.get(`/v3/profile/${me}`)).body), profile);
      assert.equal(JSON.stringify((await server.api.get(`/v3/presence/${me}/status`, { token })).body), presence);
      assert.equal((await server.api.get(`/v3/user/${me}/account_data/m.test`, { token })).status, 404);
      assert.equal((await server.api.get('/v3/pushrules/global/content/myrule', { token })).status, 404);
    });

    it('refuses a body that is not valid UTF-8 with 400 M_NOT_JSON, and writes nothing', async () => {
      // sytest's "POST rejects invalid utf-8 in JSON": 0x81 is a continuation byte with no lead byte.
      const invalid = [Buffer.from('{"username":"a'), Buffer.from([0x81]), Buffer.from('","password":"pw-xyz-12345"}')];
      const users = await userCount();
      const register = await server.api.request('POST', '/v3/register', undefined, { rawBody: new Uint8Array(Buffer.concat(invalid)), headers: { 'content-type': 'application/json' } });
      assert.equal(register.status, 400, JSON.stringify(register.body));
      assert.equal(register.body.errcode, 'M_NOT_JSON');
      const overlong = Buffer.concat([Buffer.from('{"k":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]);
      const put = await server.api.request('PUT', `/v3/user/${me}/account_data/m.utf8`, undefined, { token, rawBody: new Uint8Array(overlong), headers: { 'content-type': 'application/json' } });
      assert.equal(put.body.errcode, 'M_NOT_JSON', JSON.stringify(put.body));
      assert.equal((await server.api.get(`/v3/user/${me}/account_data/m.utf8`, { token })).status, 404);
      assert.equal(await userCount(), users);
      const valid = await server.api.request('PUT', `/v3/user/${me}/account_data/m.utf8`, undefined, { token, rawBody: new Uint8Array(Buffer.from('{"k":"é 漢 😀"}')), headers: { 'content-type': 'application/json' } });
      assert.equal(valid.status, 200);
      assert.deepEqual((await server.api.get(`/v3/user/${me}/account_data/m.utf8`, { token })).body, { k: 'é 漢 😀' });
    });

    it('accepts an escaped backslash before "u0000", which is no U+0000', async () => {
      const content = { k: '\\u0000', ['\\u0000']: ['\\\\u0000'] };
      assert.equal((await server.api.put(`/v3/user/${me}/account_data/m.escaped`, content, { token })).status, 200);
      assert.deepEqual((await server.api.get(`/v3/user/${me}/account_data/m.escaped`, { token })).body, content);
    });

    it('refuses U+0000 in path parameters, query values and names, and the access_token parameter with 400 M_INVALID_PARAM', async () => {
      const users = await userCount();
      const cases: [string, string, string, unknown, string | undefined][] = [
        ['a device ID', 'GET', '/v3/devices/MA%00IN', undefined, token],
        ['an account-data type', 'PUT', `/v3/user/${me}/account_data/m.a%00b`, { k: 1 }, token],
        ['a user ID', 'GET', '/v3/profile/%40hardy%00%3Atest.local', undefined, undefined],
        ['a push rule ID', 'PUT', '/v3/pushrules/global/override/a%00b', { actions: ['notify'], conditions: [] }, token],
        ['a push rule "before"', 'PUT', '/v3/pushrules/global/override/r1?before=a%00', { actions: ['notify'], conditions: [] }, token],
        ['a query value', 'GET', '/v3/register/available?username=nul2%00', undefined, undefined],
        ['a query name', 'GET', '/v3/register/available?username=nul2&x%00=1', undefined, undefined],
        ['the access_token parameter', 'GET', `/v3/account/whoami?access_token=${token}%00`, undefined, undefined],
        ['a registration kind', 'POST', '/v3/register?kind=user%00', { username: 'nul2', password: PW }, undefined],
        ['a mailed link', 'GET', '/_synapse/client/registration/email/submit_token?sid=a%00&client_secret=b&token=c', undefined, undefined],
      ];
      for (const [name, method, path, body, auth] of cases) {
        const res = await server.api.request(method, path, body, { token: auth });
        assert.equal(res.status, 400, `${name}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.errcode, 'M_INVALID_PARAM', `${name}: ${JSON.stringify(res.body)}`);
      }
      // The form a mailed link's page posts.
      const form = await server.api.request('POST', '/_synapse/client/registration/email/submit_token', undefined, {
        rawBody: 'sid=a%00&client_secret=b&token=c',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      assert.equal(form.status, 400);
      assert.equal((form.body as Record<string, unknown>).errcode, 'M_INVALID_PARAM');
      assert.equal(await userCount(), users);
      assert.equal((await server.api.get(`/v3/user/${me}/account_data/m.a`, { token })).status, 404);
      assert.equal((await server.api.get('/v3/pushrules/global/override/r1', { token })).status, 404);
      // '%2500' is the text '%00', not U+0000.
      assert.equal((await server.api.put(`/v3/user/${me}/account_data/m.a%2500b`, { k: 1 }, { token })).status, 200);
      assert.deepEqual((await server.api.get(`/v3/user/${me}/account_data/m.a%2500b`, { token })).body, { k: 1 });
    });

    it('creates a user and their first device in one transaction: a failed device write leaves no account', async () => {
      await refuseMarkedDevices(server);
      const users = await userCount();
      const first = await server.api.post('/v3/register', { username: 'halfway', password: PW });
      const res = await server.api.post('/v3/register', {
        username: 'halfway',
        password: PW,
        initial_device_display_name: REFUSED_NAME,
        auth: { type: 'm.login.dummy', session: first.body.session },
      }, { expectServerError: true });
      assert.equal(res.status, 500, JSON.stringify(res.body));
      assert.equal(await userCount(), users, 'no user row was left behind');
      assert.ok(await available('halfway'), 'the username is still free');
      // The same request without the failure registers, and the account works.
      const done = await server.api.register('halfway', PW);
      assert.equal((await server.api.get('/v3/account/whoami', { token: done.access_token })).body.user_id, '@halfway:test.local');
    });

    for (const depth of [5_000, 100_000]) {
      it(`refuses objects and arrays nested ${depth} deep with 400 M_BAD_JSON`, async () => {
        for (const [shape, text] of [['objects', nestedObjects(depth)], ['arrays', nestedArrays(depth)]]) {
          for (const [method, path] of [
            ['PUT', `/v3/user/${me}/account_data/m.deep`],
            ['POST', `/v3/user/${me}/filter`],
            ['PUT', `/v3/pushrules/global/override/deep`],
            ['POST', '/v3/login'],
          ]) {
            const res = await server.api.request(method!, path!, undefined, { token, rawBody: text, headers: { 'content-type': 'application/json' } });
            assert.equal(res.status, 400, `${shape} on ${path}: ${JSON.stringify(res.body).slice(0, 300)}`);
            assert.equal(res.body.errcode, 'M_BAD_JSON', `${shape} on ${path}`);
          }
        }
        assert.equal((await server.api.get(`/v3/user/${me}/account_data/m.deep`, { token })).status, 404);
        assert.equal((await server.api.get('/versions')).status, 200);
      });
    }

    it(`accepts nesting up to ${MAX_JSON_DEPTH} levels and refuses one more`, async () => {
      for (const [shape, build] of [['objects', nestedObjects], ['arrays', nestedArrays]] as const) {
        const ok = await server.api.request('PUT', `/v3/user/${me}/account_data/m.${shape}`, undefined, { token, rawBody: build(MAX_JSON_DEPTH) });
        assert.equal(ok.status, 200, `${shape}: ${JSON.stringify(ok.body)}`);
        assert.equal(JSON.stringify((await server.api.get(`/v3/user/${me}/account_data/m.${shape}`, { token })).body), build(MAX_JSON_DEPTH));
        const deeper = await server.api.request('PUT', `/v3/user/${me}/account_data/m.${shape}`, undefined, { token, rawBody: build(MAX_JSON_DEPTH + 1) });
        assert.equal(deeper.status, 400, shape);
        assert.equal(deeper.body.errcode, 'M_BAD_JSON', shape);
      }
    });
  });
}

for (const engine of HTTP_ENGINES) {
  describe(`access tokens stay out of the logs however the parameter is spelled (${engine})`, () => {
    // One homeserver whose log lines the tests read.
    const { logger, lines } = capturedLog('info');
    let fresh: Awaited<ReturnType<typeof freshDatabase>>;
    let port: number;
    let hs: Homeserver;
    let api: Api;
    before(async () => {
      fresh = await freshDatabase(engine);
      port = await freePort();
      hs = await startHomeserver(testConfig(port, fresh.database), { logger });
      api = new Api(`http://127.0.0.1:${port}`);
    });
    after(async () => {
      await hs.close();
      await fresh.drop();
    });

    it('redacts decoded parameter names in the access log and the error log', async () => {
      const { access_token: token } = await api.register('logged', PW, { device_id: 'DEV' });
      const whoami = (query: string) => fetch(`${api.baseUrl}/_matrix/client/v3/account/whoami?${query}`).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));

      // Fastify decodes parameter names, so each of these spellings authenticates as access_token.
      for (const name of ['access%5ftoken', 'access%5Ftoken', '%61ccess_token', 'access_%74oken']) {
        const res = await whoami(`${name}=${token}`);
        assert.equal(res.status, 200, name);
        assert.equal(res.body.user_id, '@logged:test.local', name);
      }
      // Spellings the server does not read as access_token are refused, and still redacted.
      for (const query of [`ACCESS_TOKEN=${token}`, `Access%5FToken=${token}`, `access_token+=${token}`]) {
        assert.equal((await whoami(query)).status, 401, query);
      }
      // '+', '%' and '=' inside values do not end the redaction early.
      const secrets = ['HEADONE+TAILONE', 'HEADTWO%2BTAILTWO', 'HEADTHREE=TAILTHREE', 'HEADFOUR%25TAILFOUR'];
      await whoami(`client_secret=${secrets[0]}&client%5Fsecret=${secrets[1]}&%73id=${secrets[2]}&token=${secrets[3]}&access_token=${token}`);

      // A failure while handling a request with the token in its URL: the 'request failed' line.
      await refuseMarkedDevices({ hs });
      const failed = await api.put(`/v3/devices/DEV?access%5ftoken=${token}`, { display_name: REFUSED_NAME }, { expectServerError: true });
      assert.equal(failed.status, 500);

      const text = lines.join('');
      assert.ok(lines.some((l) => l.includes('"request failed"')), 'the failure was logged');
      assert.ok(text.includes('access%5ftoken=<redacted>'), 'the URLs were logged, redacted');
      assert.ok(!text.includes(token), 'the access token reached the logs');
      for (const part of ['HEADONE', 'TAILONE', 'HEADTWO', 'TAILTWO', 'HEADTHREE', 'TAILTHREE', 'HEADFOUR', 'TAILFOUR']) {
        assert.ok(!text.includes(part), `a secret reached the logs: ${part}`);
      }
    });

    it('redacts a query that starts at "#", where the router splits it', async () => {
      const { access_token: token } = await api.register('hashed', PW);
      // fetch would drop a fragment; a raw request sends the '#' as a client may.
      const status = await new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: `/_matrix/client/v3/account/whoami#access%5ftoken=${token}` }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      assert.ok(status === 200 || status === 401, String(status));
      assert.ok(!lines.join('').includes(token), 'the access token reached the logs');
    });
  });
}
