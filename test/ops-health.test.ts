import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { HEALTH_QUERY_TIMEOUT_MS } from '../src/api/health.js';
import { startTestServer, type TestServer } from './helpers/server.js';

async function health(url: string, method = 'GET'): Promise<{ status: number; body: string; type: string | null; ms: number }> {
  const started = Date.now();
  const res = await fetch(`${url}/health`, { method });
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type'), ms: Date.now() - started };
}

describe('GET /health (sqlite)', () => {
  it('answers 200 OK while the database answers, and 503 once it does not', async () => {
    const server = await startTestServer('sqlite');
    try {
      const ok = await health(server.url);
      assert.equal(ok.status, 200);
      assert.equal(ok.body, 'OK');
      assert.equal(ok.type, 'text/plain; charset=utf-8');
      assert.equal((await health(server.url, 'HEAD')).status, 200);
      // Only GET and HEAD: anything else is not a health check.
      assert.equal((await fetch(`${server.url}/health`, { method: 'POST' })).status, 404);

      // The database goes away under the running server.
      await server.hs.services.store.db.close();
      const down = await health(server.url);
      assert.equal(down.status, 503);
      assert.notEqual(down.body, 'OK');
    } finally {
      await server.close().catch(() => undefined);
    }
  });
});

describe('GET /health (postgres)', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer('postgres');
  });
  after(async () => server.close());

  it('answers 503 within its timeout when no connection is free to answer, and 200 again after', async () => {
    assert.equal((await health(server.url)).status, 200);
    // Every connection of the pool held by a slow query: `select 1` waits for it, past the timeout.
    const db = server.hs.services.store.db;
    const busy = Array.from({ length: db.pool!.options.max ?? 10 }, () => sql`select pg_sleep(${(HEALTH_QUERY_TIMEOUT_MS + 1500) / 1000})`.execute(db.kysely));
    const down = await health(server.url);
    assert.equal(down.status, 503);
    assert.ok(down.ms >= HEALTH_QUERY_TIMEOUT_MS - 100 && down.ms < HEALTH_QUERY_TIMEOUT_MS + 1000, `answered after ${down.ms} ms`);
    await Promise.all(busy);
    assert.equal((await health(server.url)).status, 200);
  });
});
