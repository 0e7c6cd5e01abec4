import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { TokenCache } from '../src/services/token-cache.js';
import { decodeTokenNotice, encodeTokenNotice } from '../src/storage/stream-channel.js';
import type { ApiResponse } from './helpers/api.js';
import { ManualClock, PG, startTestServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

type Body = Record<string, unknown>;
const PW = 'pw-cache-1234';

/** Every SQL text sent to PostgreSQL by any pool client of this test process, while counting. */
const sent: string[] = [];
/** The SQL texts sent as named (prepared) statements. */
const named: string[] = [];
const originalQuery = pg.Client.prototype.query;
function countQueries(): void {
  (pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown }).query = function (this: pg.Client, ...args: unknown[]) {
    const first = args[0];
    const text = typeof first === 'string' ? first : String((first as { text?: unknown } | null)?.text ?? '');
    sent.push(text);
    if (typeof (first as { name?: unknown } | null)?.name === 'string') named.push(text);
    return (originalQuery as unknown as (...a: unknown[]) => unknown).apply(this, args);
  };
}
function stopCounting(): void {
  pg.Client.prototype.query = originalQuery;
}
const tokenLookups = () => sent.filter((text) => text.includes('access_tokens') && text.toLowerCase().startsWith('select')).length;

const cacheOf = (server: TestServer): TokenCache => {
  const cache = server.hs.services.devices.tokenCache;
  assert.ok(cache, 'PostgreSQL has a token cache');
  return cache;
};

async function whoami(server: TestServer, token: string): Promise<ApiResponse> {
  return server.api.get('/v3/account/whoami', { token });
}

async function refusedAt(server: TestServer, token: string): Promise<void> {
  const res = await whoami(server, token);
  assert.equal(res.status, 401, JSON.stringify(res.body));
  assert.equal(res.body.errcode, 'M_UNKNOWN_TOKEN');
}

/** Admin SQL on the server's database (or the maintenance one). */
async function admin<T extends pg.QueryResultRow>(text: string, params: unknown[] = []): Promise<pg.QueryResult<T>> {
  const client = new pg.Client({ ...PG, database: 'postgres' });
  await client.connect();
  try {
    return await client.query<T>(text, params);
  } finally {
    await client.end();
  }
}

describe('access-token cache across two processes on one PostgreSQL database', () => {
  let first: TestServer;
  let second: TestServer;
  before(async () => {
    first = await startTestServer('postgres');
    second = await startTestServer('postgres', {}, { database: first.config.database as unknown as Record<string, unknown> });
    await until(() => cacheOf(first).serving && cacheOf(second).serving, 'both caches to hear their own notices');
  });
  after(async () => {
    stopCounting();
    await second.close();
    await first.close();
  });

  /** Both processes have used the token, so that both hold it in memory. */
  async function cachedOnBoth(token: string): Promise<void> {
    for (const server of [first, second]) {
      for (let i = 0; i < 2; i++) assert.equal((await whoami(server, token)).status, 200);
    }
  }

  /** Sends a UIA-protected request twice: first to open a session, then with m.login.password. */
  async function withPassword(server: TestServer, method: 'POST' | 'DELETE', path: string, body: Body, token: string): Promise<ApiResponse> {
    const opened = await server.api.request(method, path, body, { token });
    assert.equal(opened.status, 401, JSON.stringify(opened.body));
    return server.api.request(method, path, { ...body, auth: { type: 'm.login.password', session: opened.body.session, password: PW } }, { token });
  }

  it('answers whoami from memory: a cache hit sends no query to the database', async () => {
    const alice = await first.api.register('cachehit', PW);
    countQueries();
    try {
      sent.length = 0;
      assert.equal((await whoami(second, alice.access_token)).status, 200);
      assert.equal(tokenLookups(), 1, 'the first request reads the token from the database');
      assert.ok(named.some((text) => text.includes('access_tokens')), 'the lookup goes as a prepared (named) statement');
      sent.length = 0;
      for (let i = 0; i < 20; i++) {
        const res = await whoami(second, alice.access_token);
        assert.equal(res.status, 200);
        assert.equal(res.body.user_id, alice.user_id);
      }
      assert.equal(tokenLookups(), 0, `no token lookup on cache hits: ${JSON.stringify(sent)}`);
    } finally {
      stopCounting();
    }
  });

  it('after /logout at one process, the token is refused at once at the other', async () => {
    const bob = await first.api.register('cachelogout', PW);
    await cachedOnBoth(bob.access_token);
    assert.equal((await first.api.post('/v3/logout', {}, { token: bob.access_token })).status, 200);
    await refusedAt(second, bob.access_token);
    await refusedAt(first, bob.access_token);
  });

  it('after /logout/all at one process, every token of the user is refused at once at the other', async () => {
    const carol = await first.api.register('cachelogoutall', PW);
    const other = await second.api.login('cachelogoutall', PW);
    await cachedOnBoth(carol.access_token);
    await cachedOnBoth(other.access_token);
    assert.equal((await second.api.post('/v3/logout/all', {}, { token: other.access_token })).status, 200);
    await refusedAt(first, carol.access_token);
    await refusedAt(first, other.access_token);
    await refusedAt(second, carol.access_token);
  });

  it('after a device is deleted at one process, its token is refused at once at the other; the user\'s other tokens still work', async () => {
    const dave = await first.api.register('cachedevice', PW);
    const doomed = await second.api.login('cachedevice', PW);
    await cachedOnBoth(doomed.access_token);
    await cachedOnBoth(dave.access_token);
    const deleted = await withPassword(first, 'DELETE', `/v3/devices/${doomed.device_id}`, {}, dave.access_token);
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
    await refusedAt(second, doomed.access_token);
    assert.equal((await whoami(second, dave.access_token)).status, 200);
  });

  it('after a password change that logs out the other devices, their tokens are refused at once at the other process', async () => {
    const erin = await first.api.register('cachepassword', PW);
    const elsewhere = await second.api.login('cachepassword', PW);
    await cachedOnBoth(erin.access_token);
    await cachedOnBoth(elsewhere.access_token);
    const changed = await withPassword(first, 'POST', '/v3/account/password', { new_password: 'pw-cache-5678', logout_devices: true }, erin.access_token);
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    await refusedAt(second, elsewhere.access_token);
    // The device that changed the password keeps its token, as the spec has it.
    assert.equal((await whoami(second, erin.access_token)).status, 200);
  });

  it('after deactivation at one process, the account\'s tokens are refused at once at the other', async () => {
    const frank = await first.api.register('cachedeactivate', PW);
    const elsewhere = await first.api.login('cachedeactivate', PW);
    await cachedOnBoth(frank.access_token);
    await cachedOnBoth(elsewhere.access_token);
    const res = await withPassword(first, 'POST', '/v3/account/deactivate', {}, frank.access_token);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await refusedAt(second, frank.access_token);
    await refusedAt(second, elsewhere.access_token);
  });

  it('after /refresh at one process, the old access token is refused at once at the other', async () => {
    await first.api.register('cacherefresh', PW);
    const login = await first.api.post<{ access_token: string; refresh_token: string }>('/v3/login', {
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: 'cacherefresh' },
      password: PW,
      refresh_token: true,
    });
    assert.equal(login.status, 200);
    await cachedOnBoth(login.body.access_token);
    const refreshed = await first.api.post<{ access_token: string }>('/v3/refresh', { refresh_token: login.body.refresh_token });
    assert.equal(refreshed.status, 200);
    await refusedAt(second, login.body.access_token);
    assert.equal((await whoami(second, refreshed.body.access_token)).status, 200);
  });

  it('after a login that reuses a device ID at one process, the device\'s earlier token is refused at once at the other', async () => {
    await first.api.register('cachereuse', PW);
    const login = (deviceId: string) =>
      first.api.post<{ access_token: string }>('/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'cachereuse' }, password: PW, device_id: deviceId });
    const before = await login('REUSED');
    await cachedOnBoth(before.body.access_token);
    const again = await login('REUSED');
    assert.equal(again.status, 200);
    await refusedAt(second, before.body.access_token);
    assert.equal((await whoami(second, again.body.access_token)).status, 200);
  });

  /** Makes the process read its token notices `ms` late, as a busy one does; returns the undo. */
  function readsNoticesLate(server: TestServer, ms: number): () => void {
    const cache = cacheOf(server);
    const own = cache.onTokenNotice;
    cache.onTokenNotice = (notice) => void setTimeout(() => own.call(cache, notice), ms);
    return () => {
      cache.onTokenNotice = own;
    };
  }

  it('answers a logout only once a process slow to read its notices has forgotten the token', async () => {
    const ivan = await first.api.register('cacheslowpeer', PW);
    await cachedOnBoth(ivan.access_token);
    const undo = readsNoticesLate(second, 600);
    try {
      const started = performance.now();
      assert.equal((await first.api.post('/v3/logout', {}, { token: ivan.access_token })).status, 200);
      const took = performance.now() - started;
      await refusedAt(second, ivan.access_token);
      assert.ok(took >= 550, `the logout waited for the other process's acknowledgement (${Math.round(took)} ms)`);
    } finally {
      undo();
    }
  });

  it('answers a logout within the bound when a process does not acknowledge, which by then no longer answers from memory', async () => {
    const judy = await first.api.register('cachestalledpeer', PW);
    await cachedOnBoth(judy.access_token);
    const undo = readsNoticesLate(second, 6_000);
    try {
      const started = performance.now();
      assert.equal((await first.api.post('/v3/logout', {}, { token: judy.access_token })).status, 200);
      const took = performance.now() - started;
      assert.ok(took >= 3_000 && took < 5_500, `answered after the delivery bound, not before nor much later (${Math.round(took)} ms)`);
      assert.equal(cacheOf(second).serving, false, 'the stalled process no longer answers from memory');
      await refusedAt(second, judy.access_token);
    } finally {
      undo();
    }
    await until(() => cacheOf(second).serving, 'the stalled process to hear itself again', 10_000);
  });

  it('answers a logout at once after a process that stopped said so, rather than waiting for its acknowledgement', async () => {
    const third = await startTestServer('postgres', {}, { database: first.config.database as unknown as Record<string, unknown> });
    const origin = cacheOf(third).origin;
    const peersOfFirst = () => (cacheOf(first) as unknown as { peers: Map<string, number> }).peers;
    await until(() => cacheOf(third).serving && peersOfFirst().has(origin), 'the first process to hear the third');
    const kate = await first.api.register('cachebyepeer', PW);
    await cachedOnBoth(kate.access_token);
    await third.close();
    await until(() => !peersOfFirst().has(origin), 'the first process to hear the third stop', 2_000);
    const started = performance.now();
    assert.equal((await first.api.post('/v3/logout', {}, { token: kate.access_token })).status, 200);
    const took = performance.now() - started;
    assert.ok(took < 2_500, `answered without waiting for the stopped process (${Math.round(took)} ms)`);
    await refusedAt(second, kate.access_token);
  });

  it('forgets everything and answers from the database while its LISTEN connection is down, then caches again', async () => {
    const gina = await first.api.register('cachedrop', PW);
    const spare = await first.api.login('cachedrop', PW);
    await cachedOnBoth(gina.access_token);
    await cachedOnBoth(spare.access_token);
    const database = (first.config.database.args as { database: string }).database;
    const killed = await admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN %'`, [database]);
    assert.equal(killed.rowCount, 2, 'one LISTEN connection per process');
    await until(() => !cacheOf(second).serving && !cacheOf(first).serving, 'both processes to notice the loss', 5000);
    assert.equal(cacheOf(second).size, 0, 'the cache was cleared');
    countQueries();
    try {
      sent.length = 0;
      assert.equal((await whoami(second, spare.access_token)).status, 200);
      assert.equal((await whoami(second, spare.access_token)).status, 200);
      assert.equal(tokenLookups(), 2, 'no answer from memory while not listening');
      // Notices sent now reach nobody: the other process must ask the database. (The logout, unable
      // to hear acknowledgements, waits out the delivery bound; the connections come back meanwhile.)
      assert.equal((await first.api.post('/v3/logout', {}, { token: gina.access_token })).status, 200);
      await refusedAt(second, gina.access_token);
      await until(() => cacheOf(second).serving, 'the LISTEN connection to come back', 5000);
      assert.equal((await whoami(second, spare.access_token)).status, 200);
      sent.length = 0;
      assert.equal((await whoami(second, spare.access_token)).status, 200);
      assert.equal(tokenLookups(), 0, 'answered from memory again');
    } finally {
      stopCounting();
    }
  });

  it('forgets everything on a notice in a format it does not know', async () => {
    const hank = await first.api.register('cacheformat', PW);
    await cachedOnBoth(hank.access_token);
    assert.ok(cacheOf(second).size > 0);
    const database = (first.config.database.args as { database: string }).database;
    const client = new pg.Client({ ...PG, database });
    await client.connect();
    await client.query(`SELECT pg_notify('myelin_tokens', '2 someone 1 @cacheformat:test.local')`);
    await client.end();
    await until(() => cacheOf(second).size === 0 && cacheOf(first).size === 0, 'both caches to be cleared');
  });
});

describe('access-token cache and token expiry (PostgreSQL)', () => {
  it('still refuses an access token the millisecond it expires', async () => {
    const clock = new ManualClock();
    const server = await startTestServer('postgres', { refreshable_access_token_lifetime: 60_000 }, { clock });
    try {
      await until(() => cacheOf(server).serving, 'the cache to hear its own notices');
      await server.api.register('cacheexpiry', PW);
      const login = await server.api.post<{ access_token: string; expires_in_ms: number }>('/v3/login', {
        type: 'm.login.password',
        identifier: { type: 'm.id.user', user: 'cacheexpiry' },
        password: PW,
        refresh_token: true,
      });
      assert.equal(login.body.expires_in_ms, 60_000);
      assert.equal((await whoami(server, login.body.access_token)).status, 200);
      assert.ok(cacheOf(server).size > 0, 'held in memory');
      clock.advance(59_999);
      assert.equal((await whoami(server, login.body.access_token)).status, 200);
      clock.advance(1);
      const res = await whoami(server, login.body.access_token);
      assert.equal(res.status, 401);
      assert.equal(res.body.errcode, 'M_UNKNOWN_TOKEN');
      assert.equal(res.body.soft_logout, true);
    } finally {
      await server.close();
    }
  });
});

describe('token notices', () => {
  it('round-trip, and anything else is not understood', () => {
    const notice = { origin: 'abc', seq: 7, userId: '@u:example.org' };
    assert.deepEqual(decodeTokenNotice(encodeTokenNotice(notice)), notice);
    assert.deepEqual(decodeTokenNotice(encodeTokenNotice({ origin: 'abc', seq: 8 })), { origin: 'abc', seq: 8 });
    const ack = { origin: 'def', seq: 9, ack: { origin: 'abc', seq: 7 } };
    assert.deepEqual(decodeTokenNotice(encodeTokenNotice(ack)), ack);
    const bye = { origin: 'def', seq: 10, bye: true as const };
    assert.deepEqual(decodeTokenNotice(encodeTokenNotice(bye)), bye);
    const malformed = ['2 abc 1', '1 abc', '1 abc x', '1 abc 1\n!room:example.org', '1 abc 1\n@a:b\n@c:d', '1 abc 1\nack abc', '1 abc 1\nack abc x', '1 abc 1\nnack abc 1', '1 abc 1\nbye now', ''];
    for (const payload of malformed) {
      assert.equal(decodeTokenNotice(payload), undefined, payload);
    }
  });
});
