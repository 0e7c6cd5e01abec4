import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { sql } from 'kysely';
import { openDb, type Db } from '../src/storage/db.js';
import { Store } from '../src/storage/index.js';
import { whenNotBusy } from '../src/storage/sqlite-busy.js';
import { freshDatabase } from './helpers/server.js';

const BOUNDED = { timeout: 20_000 };
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Two handles on one SQLite file in one process, as two servers share a database in the tests: a
 * writer waiting for the other's lock must leave the event loop running, or the holder, on the same
 * thread, can never commit, and the wait ends in SQLITE_BUSY after the busy timeout (seen in CI as a
 * 500 from the second server after 10 s).
 */
describe('SQLite: waiting for another connection\'s lock', () => {
  let path: string;
  let first: Db;
  let second: Db;
  let drop: () => Promise<void>;
  let next = 0;
  const user = (id: number) => `@busy${id}:test.local`;
  const insert = (s: Store, id: number) => s.users.create({ user_id: user(id), password_hash: null, created_ts: 1, is_guest: false });

  before(async () => {
    const fresh = await freshDatabase('sqlite');
    drop = fresh.drop;
    path = (fresh.database.args as { database: string }).database;
    first = await openDb(fresh.database as Parameters<typeof openDb>[0]);
    second = await openDb(fresh.database as Parameters<typeof openDb>[0]);
  });
  after(async () => {
    await first.close();
    await second.close();
    await drop();
  });

  /** Holds the first handle's write lock in a transaction for `ms`, across turns of the event loop. */
  async function holdLock(ms: number): Promise<{ released: Promise<number> }> {
    let started!: () => void;
    const begun = new Promise<void>((resolve) => (started = resolve));
    const id = ++next;
    const released = new Store(first)
      .transaction(async (tx) => {
        await insert(tx, id);
        started();
        await sleep(ms);
      })
      .then(() => performance.now());
    await begun;
    return { released };
  }

  it('runs a transaction once the other handle commits, with timers firing meanwhile', BOUNDED, async () => {
    const { released } = await holdLock(300);
    let ticks = 0;
    const ticker = setInterval(() => (ticks += 1), 10);
    const counted = { ...second.sqlite!.lockWaits };
    try {
      const id = ++next;
      const started = performance.now();
      await new Store(second).transaction((tx) => insert(tx, id));
      const done = performance.now();
      assert.ok(done >= (await released), 'the write waited for the lock');
      assert.ok(done - started < 2000, `waited ${Math.round(done - started)} ms for a 300 ms lock`);
      assert.ok(ticks >= 10, `the loop turned while it waited (${ticks} ticks of 10 ms)`);
      assert.equal(await new Store(first).users.exists(user(id)), true);
      assert.equal(second.sqlite!.lockWaits.waits - counted.waits, 1, 'its BEGIN waited, and is counted');
      assert.ok(second.sqlite!.lockWaits.seconds - counted.seconds > 0.1, 'most of the 300 ms lock counted as waited');
    } finally {
      clearInterval(ticker);
    }
  });

  it('runs a write outside any transaction once the other handle commits', BOUNDED, async () => {
    const { released } = await holdLock(200);
    const id = ++next;
    await insert(new Store(second), id);
    assert.ok(performance.now() >= (await released));
    assert.equal(await new Store(first).users.exists(user(id)), true);
  });

  it('reads while the other handle holds the write lock, without waiting for it', BOUNDED, async () => {
    const { released } = await holdLock(300);
    const { rows } = await sql<{ n: number }>`SELECT count(*) AS n FROM users`.execute(second.kysely);
    const read = performance.now();
    assert.equal(rows[0]!.n, next - 1, 'it sees what is committed, not the holder\'s write');
    assert.ok(read < (await released), 'the read did not wait for the lock');
  });

  it('answers reads of its own process while one of its writes waits for the other handle', BOUNDED, async () => {
    const { released } = await holdLock(300);
    const id = ++next;
    const store = new Store(second);
    const write = store.transaction((tx) => insert(tx, id)).then(() => performance.now());
    // The write has the connection first and is refused: the read queues behind it.
    await sleep(20);
    assert.equal(await store.users.exists(user(id - 1)), false, 'the holder\'s row is not committed yet');
    const read = performance.now();
    assert.ok(read < (await released), 'the read did not wait for the lock');
    assert.ok((await write) >= (await released));
    assert.equal(await store.users.exists(user(id)), true);
  });

  it('gives up with SQLITE_BUSY when the lock outlasts the wait, and leaves the other handle\'s work whole', BOUNDED, async () => {
    const holder = new SQLite(path, { timeout: 0 });
    const waiter = new SQLite(path, { timeout: 0 });
    try {
      holder.exec('BEGIN IMMEDIATE');
      holder.prepare('INSERT INTO users (user_id, password_hash, created_ts, is_guest) VALUES (?, NULL, 1, 0)').run(user(++next));
      const waits = { waits: 0, seconds: 0 };
      const started = performance.now();
      await assert.rejects(
        whenNotBusy(() => waiter.exec('BEGIN IMMEDIATE'), () => !waiter.inTransaction, waits, undefined, 150),
        (err: { code?: string }) => err.code === 'SQLITE_BUSY',
      );
      const waited = performance.now() - started;
      assert.ok(waited >= 100 && waited < 1000, `gave up after ${Math.round(waited)} ms`);
      assert.equal(waits.waits, 1, 'the statement that gave up is counted once');
      assert.ok(waits.seconds >= 0.1 && waits.seconds * 1000 <= waited + 1, `${waits.seconds} s counted`);
      assert.equal(waiter.inTransaction, false);
      holder.exec('COMMIT');
      assert.equal(await new Store(second).users.exists(user(next)), true);
    } finally {
      holder.close();
      waiter.close();
    }
  });
});
