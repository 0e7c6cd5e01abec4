import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../src/config/load.js';
import { HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';

const PW = 'client-address-pw-1';
/** Two requests per client address, then 429 (GET /register/available is limited per IP). */
const TWO = { per_second: 0.001, burst_count: 2 };

for (const engine of HTTP_ENGINES) {
  describe(`client addresses behind a proxy: x_forwarded with the default trusted_proxies (loopback) (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine, { rc_registration_availability: TWO }, { listener: { x_forwarded: true } });
    });
    after(async () => server.close());

    /** GET /register/available as a loopback proxy forwarding for `chain` (the X-Forwarded-For it sends). */
    const available = async (chain: string, username: string) => (await server.api.get(`/v3/register/available?username=${username}`, { headers: { 'x-forwarded-for': chain } })).status;

    it('takes the address the proxy saw, not a spoofed leftmost entry: a new spoof gives no fresh limit', async () => {
      assert.equal(await available('198.51.100.1, 203.0.113.7', 'a1'), 200);
      assert.equal(await available('198.51.100.2, 203.0.113.7', 'a2'), 200);
      for (const spoof of ['198.51.100.3, 203.0.113.7', '10.9.9.9,203.0.113.7', '::ffff:203.0.113.7']) {
        assert.equal(await available(spoof, 'a3'), 429, spoof);
      }
      // Another client of the proxy has its own limit.
      assert.equal(await available('198.51.100.1, 203.0.113.8', 'a4'), 200);
      // A chain through two proxies on this host: the rightmost address that is not one of them.
      assert.equal(await available('203.0.113.9, 127.0.0.1', 'a5'), 200);
      assert.equal(await available('203.0.113.9', 'a6'), 200);
      assert.equal(await available('1.1.1.1, 203.0.113.9, 127.0.0.2', 'a7'), 429);
    });

    it('records the forwarded address as the device last_seen_ip', async () => {
      await server.api.register('proxied', PW);
      const headers = { 'x-forwarded-for': '192.0.2.1, 203.0.113.44' };
      const login = await server.api.post('/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'proxied' }, password: PW }, { headers });
      assert.equal(login.status, 200);
      const devices = await server.api.get<{ devices: { device_id: string; last_seen_ip: string }[] }>('/v3/devices', { token: login.body.access_token as string, headers });
      assert.equal(devices.body.devices.find((d) => d.device_id === login.body.device_id)?.last_seen_ip, '203.0.113.44');
    });

    it('counts IPv6 clients per /64: neighbours share a limit, another /64 has its own', async () => {
      assert.equal(await available('2001:db8:1:2::1', 'v1'), 200);
      assert.equal(await available('2001:db8:1:2:ffff::9', 'v2'), 200);
      assert.equal(await available('2001:db8:1:2:8000:1:2:3', 'v3'), 429);
      assert.equal(await available('2001:db8:1:3::1', 'v4'), 200);
    });
  });

  describe(`client addresses: a listener that trusts only other proxies (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine, { rc_registration_availability: TWO }, { listener: { x_forwarded: true, trusted_proxies: ['10.0.0.0/8', 'fd00::/8'] } });
    });
    after(async () => server.close());

    it('ignores X-Forwarded-For from a peer that is not a trusted proxy', async () => {
      const statuses: number[] = [];
      for (const chain of ['203.0.113.20', '203.0.113.21', '203.0.113.22']) {
        statuses.push((await server.api.get('/v3/register/available?username=t1', { headers: { 'x-forwarded-for': chain } })).status);
      }
      // All three came from 127.0.0.1, whatever they claimed.
      assert.deepEqual(statuses, [200, 200, 429]);
    });
  });

  describe(`client addresses without x_forwarded (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine, { rc_registration_availability: TWO });
    });
    after(async () => server.close());

    it('ignores X-Forwarded-For entirely', async () => {
      const statuses: number[] = [];
      for (const chain of ['203.0.113.30', '203.0.113.31', '203.0.113.32']) {
        statuses.push((await server.api.get('/v3/register/available?username=n1', { headers: { 'x-forwarded-for': chain } })).status);
      }
      assert.deepEqual(statuses, [200, 200, 429]);
    });
  });
}

describe('trusted_proxies in the config', () => {
  const base = { server_name: 'example.org' };
  it('accepts addresses, CIDR ranges and range names with x_forwarded', () => {
    const { config } = parseConfig({ ...base, listeners: [{ port: 8008, x_forwarded: true, trusted_proxies: ['10.1.2.3', '172.16.0.0/12', '2001:db8::/32', '::1', 'loopback', 'uniquelocal'] }] });
    assert.deepEqual(config.listeners[0]!.trusted_proxies, ['10.1.2.3', '172.16.0.0/12', '2001:db8::/32', '::1', 'loopback', 'uniquelocal']);
  });

  it('refuses bad entries, a hop count, and trusted_proxies without x_forwarded, naming the key', () => {
    for (const [listener, why] of [
      [{ port: 8008, x_forwarded: true, trusted_proxies: ['10.0.0.0/33'] }, 'prefix too long'],
      [{ port: 8008, x_forwarded: true, trusted_proxies: ['proxy.example.org'] }, 'a host name'],
      [{ port: 8008, x_forwarded: true, trusted_proxies: 1 }, 'a hop count'],
      [{ port: 8008, x_forwarded: true, trusted_proxies: [] }, 'an empty list'],
      [{ port: 8008, trusted_proxies: ['10.0.0.1'] }, 'without x_forwarded'],
    ] as const) {
      assert.throws(() => parseConfig({ ...base, listeners: [listener] }), (err: Error) => err instanceof ConfigError && /listeners\.0\.trusted_proxies/.test(err.message), why);
    }
  });
});
