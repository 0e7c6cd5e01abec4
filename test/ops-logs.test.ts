import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { startHomeserver, type Homeserver } from '../src/homeserver.js';
import { Api } from './helpers/api.js';
import { capturedLog } from './helpers/log.js';
import { freePort, freshDatabase, testConfig } from './helpers/server.js';

type LogLine = Record<string, unknown> & { level: number; time: number; msg: string; request_id?: string };

/**
 * Structured JSON logs with request IDs, over real HTTP: every answer carries `X-Request-Id`, and
 * every log line written for that request carries the same ID; secrets stay out of every line.
 */
describe('JSON logs with request IDs (sqlite)', () => {
  const { logger, lines } = capturedLog('debug');
  let fresh: Awaited<ReturnType<typeof freshDatabase>>;
  let hs: Homeserver;
  let api: Api;
  const parsed = (): LogLine[] => lines.map((line) => JSON.parse(line) as LogLine);
  const linesOf = (requestId: string) => parsed().filter((l) => l.request_id === requestId);

  before(async () => {
    fresh = await freshDatabase('sqlite');
    const port = await freePort();
    hs = await startHomeserver(testConfig(port, fresh.database, { log_level: 'debug' }), { logger });
    api = new Api(`http://127.0.0.1:${port}`);
  });
  after(async () => {
    await hs.close();
    await fresh.drop();
  });

  it('answers every request with its own X-Request-Id, the one its log lines carry', async () => {
    const ids: string[] = [];
    const answers = [
      await api.get('/versions'),
      await api.get('/versions', { headers: { 'x-request-id': 'chosen-by-the-client' } }),
      await api.get('/v3/account/whoami'), // 401
      await api.get('/v3/no/such/endpoint'), // 404
      await fetch(`${api.baseUrl}/_matrix/client/versions`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'GET' } }),
      await fetch(`${api.baseUrl}/health`),
    ];
    for (const res of answers) {
      const id = res.headers.get('x-request-id');
      assert.ok(id && /^[0-9a-f]{8}-[0-9a-z]+$/.test(id), `request id ${id}`);
      ids.push(id);
    }
    assert.equal(new Set(ids).size, ids.length, 'each request has its own id');
    // An ID a client sends is not taken: it could forge another request's log lines.
    assert.ok(!ids.includes('chosen-by-the-client'));

    // Every line is JSON with a level, a time and a message; each request's access line has its id.
    const all = parsed();
    for (const line of all) {
      assert.equal(typeof line.level, 'number');
      assert.equal(typeof line.time, 'number');
      assert.equal(typeof line.msg, 'string');
    }
    const statuses = [200, 200, 401, 404];
    for (const [i, status] of statuses.entries()) {
      const access = linesOf(ids[i]!).filter((l) => l.msg === 'request');
      assert.equal(access.length, 1, `one access line for ${ids[i]}`);
      assert.equal(access[0]!.status, status);
    }
    assert.ok(!lines.join('').includes('chosen-by-the-client'));
  });

  it('puts the same id on a failure line and the access line of that request', async () => {
    const { access_token: token } = await api.register('failing');
    const { kysely } = hs.services.store.db;
    for (const event of ['INSERT', 'UPDATE']) {
      await sql.raw(`CREATE TRIGGER refuse_named_device_${event} BEFORE ${event} ON devices WHEN NEW.display_name = 'refused' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`).execute(kysely);
    }
    const device = (await api.get<{ devices: { device_id: string }[] }>('/v3/devices', { token })).body.devices[0]!.device_id;
    const res = await api.put(`/v3/devices/${device}`, { display_name: 'refused' }, { token, expectServerError: true });
    assert.equal(res.status, 500);
    const id = res.headers.get('x-request-id')!;
    const mine = linesOf(id);
    assert.deepEqual(mine.map((l) => l.msg).sort(), ['request', 'request failed']);
    assert.equal(mine.find((l) => l.msg === 'request failed')!.level, 50);
  });

  it('keeps passwords and tokens out of every line, at debug level', async () => {
    const password = 'Sekrit-Passw0rd-4-logs';
    const { access_token: token, device_id: deviceId } = await api.register('secretive', password);
    const login = await api.post<{ access_token: string; refresh_token?: string }>('/v3/login', {
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: 'secretive' },
      password,
      refresh_token: true,
    });
    assert.equal(login.status, 200);
    await fetch(`${api.baseUrl}/_matrix/client/v3/account/whoami?access_token=${token}`);
    const wrong = await api.delete(`/v3/devices/${deviceId}`, { auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'secretive' }, password: 'wrong-Passw0rd-4-logs' } }, { token: login.body.access_token });
    assert.equal(wrong.status, 401);
    const changed = await api.post('/v3/account/password', { new_password: 'Another-Passw0rd-4-logs', auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'secretive' }, password } }, { token });
    assert.equal(changed.status, 200);

    const text = lines.join('');
    for (const secret of [password, 'Another-Passw0rd-4-logs', 'wrong-Passw0rd-4-logs', token, login.body.access_token, login.body.refresh_token ?? 'no-refresh-token-issued']) {
      assert.ok(!text.includes(secret), 'a secret reached the log');
    }
    assert.ok(text.includes('access_token=<redacted>'), 'the URL was logged, redacted');
  });
});
