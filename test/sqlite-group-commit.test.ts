import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { openDb, type Db } from '../src/storage/db.js';
import { Store } from '../src/storage/index.js';
import { SqliteConnectionQueue } from '../src/storage/sqlite-connection-queue.js';
import { SqliteGroupCommit } from '../src/storage/sqlite-group-commit.js';
import { freshDatabase } from './helpers/server.js';

const BOUNDED = { timeout: 10_000 };
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * SQLite's transactions share COMMITs (storage/sqlite-group-commit.ts): checked against what another
 * connection to the same file sees, which is what is committed.
 */
describe('SQLite group commit through the Store', () => {
  let db: Db;
  let store: Store;
  let other: SQLite.Database;
  let drop: () => Promise<void>;
  let next = 0;
  const user = (id: number) => `@group${id}:test.local`;
  const committed = (id: number) => other.prepare('SELECT count(*) AS n FROM users WHERE user_id = ?').get(user(id)) as { n: number };
  const insert = (s: Store, id: number) => s.users.create({ user_id: user(id), password_hash: null, created_ts: 1, is_guest: false });

  before(async () => {
    const fresh = await freshDatabase('sqlite');
    drop = fresh.drop;
    db = await openDb(fresh.database as Parameters<typeof openDb>[0]);
    store = new Store(db);
    other = new SQLite((fresh.database.args as { database: string }).database, { readonly: true });
  });
  after(async () => {
    other.close();
    await db.close();
    await drop();
  });

  it('lets transactions queued at the connection share one COMMIT, and answers none before it', BOUNDED, async () => {
    const ids = Array.from({ length: 8 }, () => ++next);
    const before = { ...db.sqlite!.counts };
    const seenAtAnswer: number[] = [];
    await Promise.all(
      ids.map((id) =>
        store
          .transaction(async (tx) => {
            await insert(tx, id);
            await turn();
          })
          .then(() => seenAtAnswer.push(committed(id).n)),
      ),
    );
    assert.deepEqual(seenAtAnswer, ids.map(() => 1), 'each transaction was committed when it returned');
    const commits = db.sqlite!.counts.commits - before.commits;
    const units = db.sqlite!.counts.units - before.units;
    assert.equal(units, ids.length);
    assert.ok(commits >= 1 && commits < ids.length, `${ids.length} transactions in ${commits} commits`);
  });

  it('undoes a failing transaction alone, keeping the others of its group', BOUNDED, async () => {
    const [a, b, c] = [++next, ++next, ++next];
    const results = await Promise.allSettled([
      store.transaction(async (tx) => {
        await insert(tx, a);
        await turn();
      }),
      store.transaction(async (tx) => {
        await insert(tx, b);
        await turn();
        throw new Error('b fails');
      }),
      store.transaction(async (tx) => {
        await insert(tx, c);
        await turn();
      }),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.deepEqual([committed(a).n, committed(b).n, committed(c).n], [1, 0, 1]);
  });

  it('commits the open group before a write outside any transaction, which is committed when it returns', BOUNDED, async () => {
    const [a, w] = [++next, ++next];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const unit = store.transaction(async (tx) => {
      await insert(tx, a);
      await held;
    });
    await turn();
    // Queued behind the unit: when it ends, someone waits, so its group stays open for the write.
    const write = insert(store, w).then(() => [committed(a).n, committed(w).n]);
    await turn();
    release();
    await unit;
    assert.deepEqual(await write, [1, 1]);
  });
});

describe('SqliteGroupCommit', () => {
  it('fails every transaction of a group whose COMMIT fails, and keeps none of their writes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'myelin-group-'));
    const database = new SQLite(join(dir, 'db.sqlite'));
    try {
      database.pragma('journal_mode = WAL');
      database.pragma('foreign_keys = ON');
      database.exec('CREATE TABLE parent (id INTEGER PRIMARY KEY); CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)');
      const group = new SqliteGroupCommit(database);
      group.begin();
      const first = group.durable();
      database.exec('INSERT INTO parent (id) VALUES (1)');
      group.commit();
      group.released(1);
      group.begin();
      const second = group.durable();
      assert.equal(first, second, 'both transactions in the one open group');
      // Checked only at COMMIT: a child whose parent does not exist.
      database.exec('INSERT INTO child (parent) VALUES (2)');
      group.commit();
      group.released(0);
      assert.equal(database.inTransaction, false);
      assert.deepEqual(database.prepare('SELECT count(*) AS n FROM parent').get(), { n: 0 });
      assert.deepEqual(database.prepare('SELECT count(*) AS n FROM child').get(), { n: 0 });
      assert.deepEqual(group.counts, { commits: 0, units: 0 });
      return assert.rejects(first, /FOREIGN KEY/);
    } finally {
      database.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('at close, commits the finished transactions of the open group and undoes one still running', () => {
    const database = new SQLite(':memory:');
    try {
      database.exec('CREATE TABLE t (id INTEGER PRIMARY KEY)');
      const group = new SqliteGroupCommit(database);
      group.begin();
      database.prepare('INSERT INTO t (id) VALUES (1)').run();
      group.commit();
      group.released(1);
      group.begin();
      database.prepare('INSERT INTO t (id) VALUES (2)').run();
      group.close();
      assert.equal(database.inTransaction, false);
      assert.deepEqual(database.prepare('SELECT id FROM t').all(), [{ id: 1 }]);
      assert.deepEqual(group.counts, { commits: 1, units: 1 });
    } finally {
      database.close();
    }
  });

  it('commits a group at its size limit although more work waits', () => {
    const database = new SQLite(':memory:');
    try {
      database.exec('CREATE TABLE t (id INTEGER PRIMARY KEY)');
      const group = new SqliteGroupCommit(database, { units: 3, ms: 60_000 });
      for (let id = 1; id <= 7; id++) {
        group.begin();
        database.prepare('INSERT INTO t (id) VALUES (?)').run(id);
        group.commit();
        group.released(5);
      }
      assert.deepEqual(group.counts, { commits: 2, units: 6 }, 'two full groups committed, the seventh still open');
      assert.equal(database.inTransaction, true);
      group.flush();
      assert.deepEqual(group.counts, { commits: 3, units: 7 });
    } finally {
      database.close();
    }
  });
});

describe('SqliteConnectionQueue', () => {
  it('lets waiting queries go ahead of waiting transactions, at most 8 in a row, each kind in arrival order', async () => {
    const queue = new SqliteConnectionQueue();
    const order: string[] = [];
    await queue.acquire();
    const waiters: Promise<void>[] = [];
    const wait = (name: string, transaction: boolean) => {
      queue.markTransaction(transaction);
      waiters.push(queue.acquire().then(() => {
        order.push(name);
        queue.release();
      }));
    };
    wait('t1', true);
    wait('t2', true);
    for (let i = 1; i <= 10; i++) wait(`q${i}`, false);
    assert.equal(queue.waiting, 12);
    queue.release();
    await Promise.all(waiters);
    assert.deepEqual(order, ['q1', 'q2', 'q3', 'q4', 'q5', 'q6', 'q7', 'q8', 't1', 'q9', 'q10', 't2']);
    assert.equal(queue.waiting, 0);
  });
});
