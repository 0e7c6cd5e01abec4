import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

type Body = Record<string, unknown>;
const PW = 'pw-typed-1234';
const HUGE = 'x'.repeat(5000);

interface Refusal {
  what: string;
  method: 'GET' | 'POST' | 'PUT';
  path: string;
  body?: Body;
  token?: boolean;
  errcode: 'M_MISSING_PARAM' | 'M_BAD_JSON' | 'M_INVALID_PARAM';
  /** The field the error must name. */
  field: string;
}

/** For a sample of the account endpoints, each kind of bad field, answered the one way, naming the field. */
const REFUSALS: Refusal[] = [
  { what: 'register: a username of the wrong type', method: 'POST', path: '/v3/register', body: { username: 5, password: PW }, errcode: 'M_BAD_JSON', field: 'username' },
  { what: 'register: a device_id too long', method: 'POST', path: '/v3/register', body: { username: 'n', password: PW, device_id: HUGE }, errcode: 'M_INVALID_PARAM', field: 'device_id' },
  { what: 'register: an unknown kind', method: 'POST', path: '/v3/register?kind=admin', body: {}, errcode: 'M_INVALID_PARAM', field: 'kind' },
  { what: 'register: auth.session of the wrong type', method: 'POST', path: '/v3/register', body: { auth: { session: 5 } }, errcode: 'M_BAD_JSON', field: 'auth.session' },
  { what: 'register/available: no username', method: 'GET', path: '/v3/register/available', errcode: 'M_MISSING_PARAM', field: 'username' },
  { what: 'login: no password', method: 'POST', path: '/v3/login', body: { type: 'm.login.password', user: 'typed' }, errcode: 'M_MISSING_PARAM', field: 'password' },
  {
    what: 'login: identifier.user of the wrong type',
    method: 'POST',
    path: '/v3/login',
    body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 7 }, password: PW },
    errcode: 'M_BAD_JSON',
    field: 'identifier.user',
  },
  { what: 'login: a device_id too long', method: 'POST', path: '/v3/login', body: { type: 'm.login.password', user: 'typed', password: PW, device_id: HUGE }, errcode: 'M_INVALID_PARAM', field: 'device_id' },
  { what: 'refresh: no refresh_token', method: 'POST', path: '/v3/refresh', body: {}, errcode: 'M_MISSING_PARAM', field: 'refresh_token' },
  { what: 'email requestToken: no send_attempt', method: 'POST', path: '/v3/register/email/requestToken', body: { client_secret: 'cs', email: 'a@example.org' }, errcode: 'M_MISSING_PARAM', field: 'send_attempt' },
  { what: 'email requestToken: send_attempt a string', method: 'POST', path: '/v3/register/email/requestToken', body: { client_secret: 'cs', email: 'a@example.org', send_attempt: 'one' }, errcode: 'M_BAD_JSON', field: 'send_attempt' },
  { what: 'email requestToken: not an address', method: 'POST', path: '/v3/register/email/requestToken', body: { client_secret: 'cs', email: 'nope', send_attempt: 1 }, errcode: 'M_INVALID_PARAM', field: 'email' },
  {
    what: 'email requestToken: next_link not http(s)',
    method: 'POST',
    path: '/v3/register/email/requestToken',
    body: { client_secret: 'cs', email: 'a@example.org', send_attempt: 1, next_link: 'javascript:alert(1)' },
    errcode: 'M_INVALID_PARAM',
    field: 'next_link',
  },
  {
    what: 'msisdn requestToken: a number that is not one',
    method: 'POST',
    path: '/v3/register/msisdn/requestToken',
    body: { client_secret: 'cs', country: 'DE', phone_number: '12', send_attempt: 1 },
    errcode: 'M_INVALID_PARAM',
    field: 'phone_number',
  },
  { what: 'submit_token: a sid out of its alphabet', method: 'POST', path: '/_matrix/client/unstable/registration/email/submit_token', body: { sid: 'a b', client_secret: 'cs', token: '123' }, errcode: 'M_INVALID_PARAM', field: 'sid' },
  { what: 'account/password: new_password of the wrong type', method: 'POST', path: '/v3/account/password', body: { new_password: 5 }, token: true, errcode: 'M_BAD_JSON', field: 'new_password' },
  { what: 'account/password: logout_devices of the wrong type', method: 'POST', path: '/v3/account/password', body: { logout_devices: 'no' }, token: true, errcode: 'M_BAD_JSON', field: 'logout_devices' },
  { what: 'deactivate: erase of the wrong type', method: 'POST', path: '/v3/account/deactivate', body: { erase: 1 }, token: true, errcode: 'M_BAD_JSON', field: 'erase' },
  { what: 'delete_devices: no devices', method: 'POST', path: '/v3/delete_devices', body: {}, token: true, errcode: 'M_MISSING_PARAM', field: 'devices' },
  { what: 'delete_devices: a device ID of the wrong type', method: 'POST', path: '/v3/delete_devices', body: { devices: ['A', 2] }, token: true, errcode: 'M_BAD_JSON', field: 'devices.1' },
  { what: 'profile: no displayname', method: 'PUT', path: '/v3/profile/@typed:test.local/displayname', body: {}, token: true, errcode: 'M_MISSING_PARAM', field: 'displayname' },
  { what: 'profile: an avatar_url that is not mxc', method: 'PUT', path: '/v3/profile/@typed:test.local/avatar_url', body: { avatar_url: 'https://example.org/a.png' }, token: true, errcode: 'M_INVALID_PARAM', field: 'avatar_url' },
  { what: '3pid/add: a client_secret out of its alphabet', method: 'POST', path: '/v3/account/3pid/add', body: { sid: 's', client_secret: 'has space' }, token: true, errcode: 'M_INVALID_PARAM', field: 'client_secret' },
  { what: '3pid (legacy): no three_pid_creds', method: 'POST', path: '/v3/account/3pid', body: {}, token: true, errcode: 'M_MISSING_PARAM', field: 'three_pid_creds' },
  { what: '3pid (legacy): a sid of the wrong type', method: 'POST', path: '/v3/account/3pid', body: { three_pid_creds: { sid: 1, client_secret: 'cs' } }, token: true, errcode: 'M_BAD_JSON', field: 'three_pid_creds.sid' },
  { what: '3pid/delete: an unknown medium', method: 'POST', path: '/v3/account/3pid/delete', body: { medium: 'fax', address: '1' }, token: true, errcode: 'M_INVALID_PARAM', field: 'medium' },
  { what: '3pid/delete: an address of the wrong type', method: 'POST', path: '/v3/account/3pid/delete', body: { medium: 'email', address: 5 }, token: true, errcode: 'M_BAD_JSON', field: 'address' },
  { what: '3pid/bind: no id_access_token', method: 'POST', path: '/v3/account/3pid/bind', body: { sid: 's', client_secret: 'cs', id_server: 'id.example.org' }, token: true, errcode: 'M_MISSING_PARAM', field: 'id_access_token' },
  { what: 'admin register: no nonce', method: 'POST', path: '/_synapse/admin/v1/register', body: { username: 'a', password: PW, mac: 'm' }, errcode: 'M_MISSING_PARAM', field: 'nonce' },
  { what: 'admin register: admin of the wrong type', method: 'POST', path: '/_synapse/admin/v1/register', body: { nonce: 'n', username: 'a', password: PW, mac: 'm', admin: 'yes' }, errcode: 'M_BAD_JSON', field: 'admin' },
];

for (const engine of ENGINES) {
  describe(`account endpoints parse their input at the edge (${engine})`, () => {
    let server: TestServer;
    let user: { access_token: string; device_id: string };

    before(async () => {
      server = await startTestServer(engine, { registration_shared_secret: 'shared-secret-typed', enable_3pid_changes: true });
      user = await server.api.register('typed', PW);
    });
    after(async () => server.close());

    it('answers each bad field with M_MISSING_PARAM, M_BAD_JSON or M_INVALID_PARAM naming the field', async () => {
      for (const r of REFUSALS) {
        const res = await server.api.request(r.method, r.path, r.body, { token: r.token ? user.access_token : undefined });
        assert.equal(res.status, 400, `${r.what}: ${JSON.stringify(res.body).slice(0, 300)}`);
        assert.equal(res.body.errcode, r.errcode, `${r.what}: ${JSON.stringify(res.body).slice(0, 300)}`);
        const named = r.errcode === 'M_MISSING_PARAM' ? `Missing parameter: ${r.field}` : `'${r.field}'`;
        assert.ok(String(res.body.error).includes(named), `${r.what}: the error names ${r.field}: ${String(res.body.error).slice(0, 200)}`);
      }
      // Nothing was created or changed by any of them.
      assert.equal(await server.hs.services.store.users.countUsers(), 1);
      assert.equal((await server.api.get('/v3/account/whoami', { token: user.access_token })).status, 200);
    });

    it('reads remembered UIA parameters with the endpoint\'s schema, once the session is complete', async () => {
      // A session may be opened before the request has every parameter: 401, not 400.
      const open = await server.api.post('/v3/account/3pid/add', {}, { token: user.access_token });
      assert.equal(open.status, 401, JSON.stringify(open.body));
      const auth = { type: 'm.login.password', session: open.body.session, password: PW };
      const done = await server.api.post('/v3/account/3pid/add', { auth }, { token: user.access_token });
      assert.equal(done.status, 400, JSON.stringify(done.body));
      assert.equal(done.body.errcode, 'M_MISSING_PARAM');
      assert.match(String(done.body.error), /\bsid\b/);

      // Remembered credentials are used when a later request of the session brings none.
      const first = await server.api.post('/v3/account/3pid/add', { sid: 'nosuchsid', client_secret: 'cs' }, { token: user.access_token });
      assert.equal(first.status, 401);
      const later = await server.api.post('/v3/account/3pid/add', { auth: { ...auth, session: first.body.session } }, { token: user.access_token });
      assert.equal(later.status, 403, JSON.stringify(later.body));
      assert.equal(later.body.errcode, 'M_THREEPID_AUTH_FAILED');
      assert.deepEqual((await server.api.get<{ threepids: unknown[] }>('/v3/account/3pid', { token: user.access_token })).body.threepids, []);
    });
  });

  describe(`a UIA session serves only the operation it was opened for (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine);
    });
    after(async () => server.close());

    it('a session opened to delete device A cannot delete device B, delete a list, deactivate or change the password', async () => {
      const main = await server.api.register('owner', PW);
      const a = await server.api.login('owner', PW);
      const b = await server.api.login('owner', PW);
      const token = main.access_token;
      const opened = await server.api.delete(`/v3/devices/${a.device_id}`, {}, { token });
      assert.equal(opened.status, 401, JSON.stringify(opened.body));
      const auth = { type: 'm.login.password', session: opened.body.session, password: PW };

      for (const [method, path, body] of [
        ['DELETE', `/v3/devices/${b.device_id}`, { auth }],
        ['POST', '/v3/delete_devices', { devices: [b.device_id], auth }],
        ['POST', '/v3/delete_devices', { devices: [a.device_id], auth }],
        ['POST', '/v3/account/deactivate', { auth }],
        ['POST', '/v3/account/password', { new_password: 'pw-hijacked-999', auth }],
      ] as const) {
        const res = await server.api.request(method, path, body, { token });
        assert.equal(res.status, 403, `${method} ${path}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.errcode, 'M_FORBIDDEN', `${method} ${path}`);
      }
      for (const device of [a, b]) assert.equal((await server.api.get('/v3/account/whoami', { token: device.access_token })).status, 200);
      assert.equal((await server.api.login('owner', PW)).user_id, '@owner:test.local');

      // The session still serves its own operation, once.
      const own = await server.api.delete(`/v3/devices/${a.device_id}`, { auth }, { token });
      assert.equal(own.status, 200, JSON.stringify(own.body));
      assert.equal((await server.api.get('/v3/account/whoami', { token: a.access_token })).status, 401);
      assert.equal((await server.api.get('/v3/account/whoami', { token: b.access_token })).status, 200);
    });

    it('a stored stage result that does not read as one counts as not done', async () => {
      const opened = await server.api.post('/v3/register', { username: 'tampered', password: PW });
      assert.equal(opened.status, 401);
      const session = opened.body.session as string;
      // As a row written by another version might hold it: not a result this version knows.
      await server.hs.services.store.uia.setResults(session, JSON.stringify({ 'm.login.dummy': { user_id: 5 } }));
      const res = await server.api.post('/v3/register', { username: 'tampered', password: PW, auth: { session } });
      assert.equal(res.status, 401, JSON.stringify(res.body));
      assert.deepEqual(res.body.completed, []);
      assert.equal((await server.api.get('/v3/register/available?username=tampered')).status, 200);
    });
  });
}
