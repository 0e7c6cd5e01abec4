import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { sql } from 'kysely';
import { Api } from './helpers/api.js';
import { scrape } from './helpers/metrics.js';
import { SmtpSink } from './helpers/smtp.js';
import { freePort, startTestServer, type TestServer } from './helpers/server.js';
import { secret } from './helpers/threepid-email.js';
import { until } from './helpers/until.js';

/**
 * Prometheus metrics (`enable_metrics: true`) over real HTTP, scraped and read by a real
 * Prometheus text-format parser (parse-prometheus-text-format): each figure is seen to move.
 */
describe('Prometheus metrics (sqlite)', () => {
  let server: TestServer;
  let smtp: SmtpSink;
  let metricsPort: number;
  let url: string;
  let api: Api;
  const metricsUrl = () => `http://127.0.0.1:${metricsPort}/metrics`;

  before(async () => {
    // Created but not started: the first tries to send fail, as with a mail server that is down.
    smtp = await SmtpSink.create();
    metricsPort = await freePort();
    const port = await freePort();
    server = await startTestServer('sqlite', {
      enable_metrics: true,
      listeners: [
        { port, bind_addresses: ['127.0.0.1'], resources: [{ names: ['client', 'metrics'] }] },
        { port: metricsPort, bind_addresses: ['127.0.0.1'], type: 'metrics' },
      ],
      public_baseurl: `http://127.0.0.1:${port}/`,
      email: smtp.emailConfig(),
      sms: { provider: 'log' },
      rc_3pid_validation: { per_second: 1000, burst_count: 1000 },
      outbox: { max_retry_interval: '300ms', poll_interval: '1s' },
    });
    // The listeners are this test's own: the helper's URL names a port it did not bind.
    url = `http://127.0.0.1:${port}`;
    api = new Api(url);
  });
  after(async () => {
    await server.close();
    await smtp.stop();
  });

  it('serves the text format on the metrics listener and on the metrics resource, with process and event-loop metrics', async () => {
    for (const target of [metricsUrl(), `http://127.0.0.1:${metricsPort}/_synapse/metrics`, `${url}/_synapse/metrics`]) {
      const s = await scrape(target);
      assert.ok(s.value('process_resident_memory_bytes') > 1e6, `${target}: resident memory`);
      assert.ok(s.value('process_cpu_seconds_total') > 0, `${target}: CPU time`);
      assert.equal(s.family('nodejs_eventloop_lag_seconds')?.type, 'GAUGE', `${target}: event loop lag`);
      assert.ok(s.family('nodejs_eventloop_lag_p99_seconds'), `${target}: event loop lag percentiles`);
      assert.equal(s.family('myelin_sync_longpolls_waiting')?.type, 'GAUGE');
      assert.equal(s.value('myelin_outbox_pending', { channel: 'email' }), 0);
      assert.equal(s.value('myelin_outbox_pending', { channel: 'sms' }), 0);
      // SQLite has no connection pool.
      assert.equal(s.family('myelin_db_pool_connections'), undefined);
    }
    // The metrics listener serves nothing else.
    const versions = await fetch(`http://127.0.0.1:${metricsPort}/_matrix/client/versions`);
    assert.equal(versions.status, 404);
  });

  it('counts and times requests per route template and status code, never per raw URL', async () => {
    const before = await scrape(metricsUrl());
    const versions = { method: 'GET', route: '/_matrix/client/versions', code: '200' };
    const profile = { method: 'GET', route: '/_matrix/client/v3/profile/:userId', code: '404' };
    const unmatched = { method: 'GET', route: 'unmatched', code: '404' };
    for (let i = 0; i < 3; i++) assert.equal((await api.get('/versions')).status, 200);
    for (const who of ['@nobody-one:test.local', '@nobody-two:test.local']) {
      assert.equal((await api.get(`/v3/profile/${encodeURIComponent(who)}`)).status, 404);
    }
    const stray = await fetch(`${url}/no/such/path-xyzzy?access_token=SECRETTOKEN`);
    assert.equal(stray.status, 404);

    const now = await scrape(metricsUrl());
    assert.equal(now.family('myelin_http_requests_total')?.type, 'COUNTER');
    assert.equal(now.family('myelin_http_request_duration_seconds')?.type, 'HISTOGRAM');
    assert.equal(now.value('myelin_http_requests_total', versions) - before.value('myelin_http_requests_total', versions), 3);
    const latency = now.histogram('myelin_http_request_duration_seconds', versions);
    assert.equal(latency.count - before.histogram('myelin_http_request_duration_seconds', versions).count, 3);
    assert.equal(latency.buckets['+Inf'], latency.count);
    assert.ok((latency.buckets['0.005'] ?? -1) <= (latency.buckets['60'] ?? -1), 'cumulative buckets');
    assert.ok(latency.sum > 0 && latency.sum < 60);
    assert.equal(now.histogram('myelin_http_request_duration_seconds', profile).count - before.histogram('myelin_http_request_duration_seconds', profile).count, 2);
    assert.equal(now.value('myelin_http_requests_total', profile) - before.value('myelin_http_requests_total', profile), 2);
    assert.equal(now.value('myelin_http_requests_total', unmatched) - before.value('myelin_http_requests_total', unmatched), 1);
    // Bounded: no user ID, path or parameter of a request is ever a label.
    for (const raw of ['nobody-one', 'nobody-two', 'xyzzy', 'SECRETTOKEN']) assert.ok(!now.text.includes(raw), raw);
  });

  it('shows queued mail in the outbox depth and age, then its retries and its sending', async () => {
    const queued = await api.post('/v3/register/email/requestToken', { client_secret: secret(), email: 'depth@example.org', send_attempt: 1 });
    assert.equal(queued.status, 200);
    await new Promise((r) => setTimeout(r, 50));
    const waiting = await scrape(metricsUrl());
    assert.equal(waiting.value('myelin_outbox_pending', { channel: 'email' }), 1);
    assert.ok(waiting.value('myelin_outbox_oldest_pending_age_seconds', { channel: 'email' }) >= 0.05);

    // The SMTP server is down: the tries fail and are retried.
    await until(async () => (await scrape(metricsUrl())).value('myelin_outbox_retried_total', { channel: 'email' }) >= 2, 'two retries');
    const stillWaiting = await scrape(metricsUrl());
    assert.equal(stillWaiting.value('myelin_outbox_pending', { channel: 'email' }), 1);
    assert.equal(stillWaiting.value('myelin_outbox_sent_total', { channel: 'email' }), 0);

    await smtp.start();
    await smtp.waitFor((m) => m.envelopeTo.includes('depth@example.org'));
    await until(async () => (await scrape(metricsUrl())).value('myelin_outbox_pending', { channel: 'email' }) === 0, 'the queue to empty');
    const sent = await scrape(metricsUrl());
    assert.equal(sent.value('myelin_outbox_sent_total', { channel: 'email' }), 1);
    assert.equal(sent.value('myelin_outbox_oldest_pending_age_seconds', { channel: 'email' }), 0);
    assert.equal(sent.value('myelin_outbox_failed_total', { channel: 'email' }), 0);

    // A mailbox refused for good: the message is given up.
    smtp.rejectRecipients((address) => address === 'gone@example.org');
    await api.post('/v3/register/email/requestToken', { client_secret: secret(), email: 'gone@example.org', send_attempt: 1 });
    await until(async () => (await scrape(metricsUrl())).value('myelin_outbox_failed_total', { channel: 'email' }) === 1, 'the message to be given up');

    // SMS go through the same outbox, counted under their own channel.
    const sms = await api.post('/v3/register/msisdn/requestToken', { client_secret: secret(), country: 'DE', phone_number: '0151 77775555', send_attempt: 1 });
    assert.equal(sms.status, 200);
    await until(async () => (await scrape(metricsUrl())).value('myelin_outbox_sent_total', { channel: 'sms' }) === 1, 'the SMS to be sent');
  });

  it('shows long-poll syncs waiting', async () => {
    const alice = await api.register('metrics-alice');
    const initial = await api.get<{ next_batch: string }>('/v3/sync', { token: alice.access_token });
    const polling = api.get(`/v3/sync?since=${initial.body.next_batch}&timeout=20000`, { token: alice.access_token });
    await until(async () => (await scrape(metricsUrl())).value('myelin_sync_longpolls_waiting') === 1, 'the sync to be counted as waiting');
    await api.put(`/v3/user/${encodeURIComponent(alice.user_id)}/account_data/org.example.wake`, { x: 1 }, { token: alice.access_token });
    assert.equal((await polling).status, 200);
    assert.equal((await scrape(metricsUrl())).value('myelin_sync_longpolls_waiting'), 0);
  });

  it("counts the waits for another connection's SQLite lock, and the request that waited succeeds", async () => {
    const bob = await api.register('metrics-locked');
    const before = await scrape(metricsUrl());
    // Plays another process on the same file: it takes the write lock and keeps it for 300 ms.
    const other = new SQLite((server.config.database.args as { database: string }).database, { timeout: 0 });
    try {
      other.exec('BEGIN IMMEDIATE');
      const created = api.post<{ room_id: string }>('/v3/createRoom', {}, { token: bob.access_token });
      await new Promise((resolve) => setTimeout(resolve, 300));
      other.exec('COMMIT');
      assert.equal((await created).status, 200);
    } finally {
      other.close();
    }
    const now = await scrape(metricsUrl());
    assert.equal(now.family('myelin_sqlite_lock_waits_total')?.type, 'COUNTER');
    assert.ok(now.value('myelin_sqlite_lock_waits_total') - before.value('myelin_sqlite_lock_waits_total') >= 1);
    const waited = now.value('myelin_sqlite_lock_wait_seconds_total') - before.value('myelin_sqlite_lock_wait_seconds_total');
    assert.ok(waited > 0.1 && waited < 5, `${waited} s waited`);
  });

  it('answers 503 M_UNKNOWN with Retry-After when another process holds the lock past the wait, and wrote nothing', async () => {
    const bob = await api.register('metrics-locked-long');
    const joined = () => api.get<{ joined_rooms: string[] }>('/v3/joined_rooms', { token: bob.access_token });
    const path = (server.config.database.args as { database: string }).database;
    const other = new SQLite(path, { timeout: 0 });
    let answer;
    try {
      other.exec('BEGIN IMMEDIATE');
      // Answered once the 5 s wait is over, the lock still held.
      answer = await api.post('/v3/createRoom', {}, { token: bob.access_token, expectServerError: true });
    } finally {
      other.exec('COMMIT');
      other.close();
    }
    assert.equal(answer.status, 503);
    assert.equal(answer.body.errcode, 'M_UNKNOWN');
    assert.equal(answer.headers.get('retry-after'), '1');
    assert.deepEqual((await joined()).body.joined_rooms, []);
  });

  it("counts room writes by where the room's head came from", async () => {
    const bob = await api.register('metrics-bob');
    const created = await api.post<{ room_id: string }>('/v3/createRoom', {}, { token: bob.access_token });
    assert.equal(created.status, 200);
    const before = await scrape(metricsUrl());
    const send = (i: number) => api.put(`/v3/rooms/${encodeURIComponent(created.body.room_id)}/send/m.room.message/m${i}`, { msgtype: 'm.text', body: `${i}` }, { token: bob.access_token });
    for (let i = 0; i < 3; i++) assert.equal((await send(i)).status, 200);
    const now = await scrape(metricsUrl());
    assert.equal(now.family('myelin_room_writes_total')?.type, 'COUNTER');
    // The room was written by this process just before: each send found its head in memory.
    assert.equal(now.value('myelin_room_writes_total', { head: 'cached' }) - before.value('myelin_room_writes_total', { head: 'cached' }), 3);
    assert.equal(now.value('myelin_room_writes_total', { head: 'database' }), before.value('myelin_room_writes_total', { head: 'database' }));
  });
});

describe('Prometheus metrics: the PostgreSQL connection pool', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer('postgres', { enable_metrics: true }, { listener: { resources: [{ names: ['client', 'metrics'] }] } });
  });
  after(async () => server.close());

  it('reports the pool size, connections in use and queries waiting', async () => {
    const url = `${server.url}/_synapse/metrics`;
    const idle = await scrape(url);
    assert.equal(idle.value('myelin_db_pool_max_connections'), 10);
    assert.ok(idle.value('myelin_db_pool_connections') >= 1, 'the pool has opened a connection');
    assert.ok(idle.value('myelin_db_pool_idle_connections') <= idle.value('myelin_db_pool_connections'));
    assert.equal(idle.value('myelin_db_pool_waiting_queries'), 0);

    // Every connection busy, and more queries queued behind them.
    const db = server.hs.services.store.db.kysely;
    const busy = Array.from({ length: 12 }, () => sql`select pg_sleep(1.5)`.execute(db));
    await until(() => (server.hs.services.store.db.pool?.waitingCount ?? 0) >= 2, 'queries to queue');
    const loaded = await scrape(url);
    assert.equal(loaded.value('myelin_db_pool_connections'), 10);
    assert.equal(loaded.value('myelin_db_pool_idle_connections'), 0);
    assert.ok(loaded.value('myelin_db_pool_waiting_queries') >= 2, String(loaded.value('myelin_db_pool_waiting_queries')));
    await Promise.all(busy);
    await until(async () => (await scrape(url)).value('myelin_db_pool_waiting_queries') === 0, 'the queue to drain');
  });
});

describe('Prometheus metrics: off unless enable_metrics', () => {
  it('serves no metrics, and starts no metrics listener, when enable_metrics is not set', async () => {
    const metricsPort = await freePort();
    const port = await freePort();
    const server = await startTestServer('sqlite', {
      listeners: [
        { port, bind_addresses: ['127.0.0.1'], resources: [{ names: ['client', 'metrics'] }] },
        { port: metricsPort, bind_addresses: ['127.0.0.1'], type: 'metrics' },
      ],
    });
    try {
      assert.equal(server.hs.metrics, undefined);
      assert.equal((await fetch(`http://127.0.0.1:${port}/_synapse/metrics`)).status, 404);
      await assert.rejects(fetch(`http://127.0.0.1:${metricsPort}/metrics`));
      assert.equal((await new Api(`http://127.0.0.1:${port}`).get('/versions')).status, 200);
    } finally {
      await server.close();
    }
  });
});
