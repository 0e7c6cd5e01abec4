import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { describe, it } from 'node:test';
import { sql, type Kysely } from 'kysely';
import { isPrivateDatabase, WalCheckpointer } from '../src/storage/checkpoint.js';
import { openDb } from '../src/storage/db.js';
import { freshDatabase, startTestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

const sizeOf = (file: string) => (existsSync(file) ? statSync(file).size : 0);

async function autocheckpoint(kysely: Kysely<never>): Promise<number> {
  const { rows } = await sql<{ wal_autocheckpoint: number }>`PRAGMA wal_autocheckpoint`.execute(kysely);
  return rows[0]!.wal_autocheckpoint;
}

describe('SQLite WAL checkpoints from a thread of their own', () => {
  it('keeps the WAL bounded under many writes while the main connection never checkpoints', async () => {
    const fresh = await freshDatabase('sqlite');
    const path = (fresh.database.args as { database: string }).database;
    const wal = `${path}-wal`;
    const limit = 2 * 1024 * 1024;
    const db = await openDb(fresh.database as Parameters<typeof openDb>[0], { checkpoint: { intervalMs: 200, pollMs: 20, sizeLimitBytes: limit } });
    try {
      assert.equal(await autocheckpoint(db.kysely as unknown as Kysely<never>), 0, 'the main connection does not checkpoint');
      await sql`CREATE TABLE scratch (id INTEGER PRIMARY KEY, body BLOB NOT NULL)`.execute(db.kysely);
      // The thread is up once it has emptied the WAL of that first write.
      assert.ok(sizeOf(wal) > 0);
      await until(() => sizeOf(wal) === 0, 'the checkpoint thread to truncate the idle WAL', 10_000);
      const row = Buffer.alloc(16 * 1024, 7);
      const rows = 1600; // 25 MiB written, more than ten times the bound
      let largest = 0;
      for (let i = 0; i < rows; i++) {
        await sql`INSERT INTO scratch (id, body) VALUES (${i}, ${row})`.execute(db.kysely);
        largest = Math.max(largest, sizeOf(wal));
        // Requests leave gaps between their commits; so does this loop (about 10 MB/s at most).
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      const written = rows * row.length;
      assert.ok(largest < 4 * limit, `the WAL reached ${largest} bytes for ${written} written (bound ${limit})`);
      // The rows went into the database file itself: the checkpoints copied them there.
      await until(() => sizeOf(path) >= written, 'the rows to be copied into the database file', 10_000);
      // Once nothing is written, the WAL is truncated to nothing.
      await until(() => sizeOf(wal) === 0, 'the idle WAL to be truncated', 10_000);
      const { rows: count } = await sql<{ n: number }>`SELECT count(*) AS n FROM scratch`.execute(db.kysely);
      assert.equal(count[0]!.n, rows);
      assert.equal(await autocheckpoint(db.kysely as unknown as Kysely<never>), 0);
    } finally {
      await db.close();
    }
    // The checkpoint thread closed its connection too: the last one to close removes the WAL.
    assert.equal(existsSync(wal), false, 'the WAL file is gone after close');
    await fresh.drop();
  });

  it('without writes the WAL stays empty, and an in-memory database gets no thread', async () => {
    assert.equal(isPrivateDatabase(':memory:'), true);
    assert.equal(isPrivateDatabase(''), true);
    assert.equal(isPrivateDatabase('/tmp/x/homeserver.db'), false);
    assert.equal(WalCheckpointer.start(':memory:', () => undefined), undefined);
    const memory = await openDb({ name: 'sqlite3', args: { database: ':memory:' } });
    try {
      // No thread to checkpoint for it, so SQLite's own setting is left alone.
      assert.equal(await autocheckpoint(memory.kysely as unknown as Kysely<never>), 1000);
    } finally {
      await memory.close();
    }
  });

  it('runs under the homeserver: the WAL is checkpointed off the main connection, and the server closes cleanly', async () => {
    const server = await startTestServer('sqlite');
    const path = (server.config.database.args as { database: string }).database;
    const wal = `${path}-wal`;
    try {
      assert.equal(await autocheckpoint(server.hs.services.store.db.kysely as unknown as Kysely<never>), 0);
      const alice = await server.api.register('walter');
      for (let i = 0; i < 20; i++) {
        const res = await server.api.put(`/v3/user/${encodeURIComponent(alice.user_id)}/account_data/org.example.n${i}`, { i }, { token: alice.access_token });
        assert.equal(res.status, 200);
      }
      assert.ok(sizeOf(wal) > 0, 'the writes went to the WAL');
      // The default timer: the WAL is copied within a second or two, and truncated once idle.
      await until(() => sizeOf(wal) === 0, 'the WAL to be checkpointed and truncated', 10_000);
      assert.equal((await server.api.get('/v3/account/whoami', { token: alice.access_token })).status, 200);
    } finally {
      const started = Date.now();
      await server.close();
      assert.ok(Date.now() - started < 5_000, `closed in ${Date.now() - started} ms`);
    }
  });
});
