import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from './helpers/server.js';

const PW = 'pw-limits-1234';
const FEW = { per_second: 0.001, burst_count: 3 };

// The limiter's buckets live in the database, but nothing here depends on the engine's SQL: SQLite suffices.
describe('wrong passwords in UIA spend the failed-attempts budget of /login', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer('sqlite', { rc_login: { address: { per_second: 1000, burst_count: 1000 }, account: { per_second: 1000, burst_count: 1000 }, failed_attempts: FEW } });
  });
  after(async () => server.close());

  async function deleteDevice(token: string, deviceId: string, password: string) {
    const open = await server.api.request('DELETE', `/v3/devices/${deviceId}`, {}, { token });
    assert.equal(open.status, 401, JSON.stringify(open.body));
    return server.api.request('DELETE', `/v3/devices/${deviceId}`, { auth: { type: 'm.login.password', session: open.body.session, password } }, { token });
  }

  it('refuses a guesser holding an access token after rc_login.failed_attempts, in UIA and at /login alike', async () => {
    const victim = await server.api.register('guessed', PW);
    const other = await server.api.login('guessed', PW);
    for (let i = 0; i < FEW.burst_count; i++) {
      const wrong = await deleteDevice(victim.access_token, other.device_id, `wrong-${i}`);
      assert.equal(wrong.status, 401, JSON.stringify(wrong.body));
      assert.equal(wrong.body.errcode, 'M_FORBIDDEN');
    }
    const limited = await deleteDevice(victim.access_token, other.device_id, `wrong-again`);
    assert.equal(limited.status, 429, JSON.stringify(limited.body));
    assert.equal(limited.body.errcode, 'M_LIMIT_EXCEEDED');
    const right = await deleteDevice(victim.access_token, other.device_id, PW);
    assert.equal(right.status, 429, 'not even the right password is tried while the budget is spent');
    const login = await server.api.post('/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'guessed' }, password: PW });
    assert.equal(login.status, 429, 'the budget is the one /login spends');
    assert.equal((await server.api.get(`/v3/devices/${other.device_id}`, { token: victim.access_token })).status, 200, 'the device is still there');
  });

  it('keeps each account its own budget', async () => {
    const bystander = await server.api.register('bystander', PW);
    const second = await server.api.login('bystander', PW);
    const res = await deleteDevice(bystander.access_token, second.device_id, PW);
    assert.equal(res.status, 200, JSON.stringify(res.body));
  });
});
