import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pg from 'pg';
import { PG, twoProcessesOnePostgres } from './helpers/server.js';
import { until } from './helpers/until.js';

type Sync = { next_batch: string; account_data: { events: { type: string; content: Record<string, unknown> }[] } };

describe('long-poll across two homeserver processes sharing Postgres', () => {
  const servers = twoProcessesOnePostgres();

  it('wakes a sync waiting on one process when account data changes through the other', async () => {
    const alice = await servers.first.api.register('alice');
    const initial = await servers.first.api.get<Sync>('/v3/sync', { token: alice.access_token });
    const notifier = servers.first.hs.services.notifier;
    const waiting = servers.first.api.get<Sync>(`/v3/sync?since=${initial.body.next_batch}&timeout=30000`, { token: alice.access_token });
    let answered = false;
    void waiting.then(() => (answered = true));
    await until(() => notifier.waiting === 1, 'the sync to wait');
    assert.equal(answered, false, 'the sync really waited');
    const changedAt = Date.now();
    const put = await servers.second.api.put(`/v3/user/${encodeURIComponent(alice.user_id)}/account_data/org.example.shared`, { from: 'second' }, { token: alice.access_token });
    assert.equal(put.status, 200);
    const res = await waiting;
    const returnedAt = Date.now();
    assert.deepEqual(res.body.account_data.events, [{ type: 'org.example.shared', content: { from: 'second' } }]);
    assert.ok(returnedAt - changedAt < 1000, `returned ${returnedAt - changedAt} ms after the change`);
  });

  it('wakes a sync on the other process for a to-device message too', async () => {
    const bob = await servers.second.api.register('bob');
    const bob2 = await servers.first.api.login('bob');
    const initial = await servers.second.api.get<Sync>('/v3/sync', { token: bob2.access_token });
    const waiting = servers.second.api.get<{ to_device: { events: { type: string }[] } }>(`/v3/sync?since=${initial.body.next_batch}&timeout=30000`, { token: bob2.access_token });
    await until(() => servers.second.hs.services.notifier.waiting === 1, 'the sync to wait');
    const sentAt = Date.now();
    await servers.first.api.put('/v3/sendToDevice/org.example.x/t1', { messages: { [bob.user_id]: { [bob2.device_id]: { hi: 1 } } } }, { token: bob.access_token });
    const res = await waiting;
    assert.ok(Date.now() - sentAt < 1000);
    assert.deepEqual(res.body.to_device.events.map((e) => e.type), ['org.example.x']);
  });

  it('listens again after its LISTEN connection is killed', async () => {
    const dave = await servers.first.api.register('dave');
    const database = (servers.first.config.database.args as { database: string }).database;
    const admin = new pg.Client({ ...PG, database: 'postgres' });
    await admin.connect();
    const killed = await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN %'`, [database]);
    await admin.end();
    assert.equal(killed.rowCount, 2, 'one LISTEN connection per process');
    // Reconnection happens after a second; wait for it, then a change through one process must again wake the other.
    const listening = async () => {
      const c = new pg.Client({ ...PG, database: 'postgres' });
      await c.connect();
      const res = await c.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN %'`, [database]);
      await c.end();
      return (res.rows[0] as { n: number }).n;
    };
    await until(async () => (await listening()) >= 2, 'both processes to LISTEN again', 5000);
    const initial = await servers.first.api.get<Sync>('/v3/sync', { token: dave.access_token });
    const waiting = servers.first.api.get<Sync>(`/v3/sync?since=${initial.body.next_batch}&timeout=30000`, { token: dave.access_token });
    await until(() => servers.first.hs.services.notifier.waiting === 1, 'the sync to wait');
    const changedAt = Date.now();
    await servers.second.api.put(`/v3/user/${encodeURIComponent(dave.user_id)}/account_data/org.example.again`, { n: 1 }, { token: dave.access_token });
    const res = await waiting;
    assert.ok(Date.now() - changedAt < 1000);
    assert.deepEqual(res.body.account_data.events.map((e) => e.type), ['org.example.again']);
  });

  it('releases waiting syncs promptly when the server closes', async () => {
    const carol = await servers.first.api.register('carol');
    const initial = await servers.first.api.get<Sync>('/v3/sync', { token: carol.access_token });
    const controller = new AbortController();
    const abandoned = fetch(`${servers.first.url}/_matrix/client/v3/sync?since=${initial.body.next_batch}&timeout=30000`, {
      headers: { authorization: `Bearer ${carol.access_token}` },
      signal: controller.signal,
    }).catch(() => undefined);
    const waiting = servers.first.api.get<Sync>(`/v3/sync?since=${initial.body.next_batch}&timeout=30000`, { token: carol.access_token });
    await until(() => servers.first.hs.services.notifier.waiting === 2, 'both syncs to wait');
    assert.equal(servers.first.hs.services.notifier.waiting, 2);
    // One client gives up but keeps its socket; close must not wait for it.
    controller.abort();
    const t = Date.now();
    await servers.first.hs.close();
    assert.ok(Date.now() - t < 3000, `close took ${Date.now() - t} ms`);
    const res = await waiting;
    assert.equal(res.status, 200);
    assert.equal(res.body.next_batch, initial.body.next_batch);
    await abandoned;
    await servers.first.restart();
  });
});
