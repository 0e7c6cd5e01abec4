import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import type { Db } from '../src/storage/db.js';
import { openDb } from '../src/storage/db.js';
import { Store } from '../src/storage/index.js';
import { freshDatabase } from './helpers/server.js';

/**
 * SQLite's statements do not wait: without a yield, requests queued for its one connection would run
 * one after another in a single turn of the event loop, however many there are.
 */
describe('SQLite: queued queries let the event loop turn', () => {
  let db: Db;
  let drop: () => Promise<void>;
  let other: SQLite.Database;
  let path: string;
  before(async () => {
    const fresh = await freshDatabase('sqlite');
    drop = fresh.drop;
    db = await openDb(fresh.database as Parameters<typeof openDb>[0]);
    path = (fresh.database.args as { database: string }).database;
    other = new SQLite(path, { readonly: true });
  });
  after(async () => {
    other.close();
    await db.close();
    await drop();
  });

  it('runs a timer callback while 200 transactions of 1 ms each wait for the connection', async () => {
    const store = new Store(db);
    let done = 0;
    let doneWhenTimerRan = -1;
    const work = Array.from({ length: 200 }, () =>
      store.transaction(async (tx) => {
        await tx.users.exists('@nobody:test.local');
        const until = performance.now() + 1;
        while (performance.now() < until);
        done += 1;
      }),
    );
    setImmediate(() => {
      doneWhenTimerRan = done;
    });
    await Promise.all(work);
    assert.equal(done, 200);
    assert.ok(doneWhenTimerRan >= 0 && doneWhenTimerRan < 100, `the loop turned after ${doneWhenTimerRan} of 200 transactions (about 10 ms of them)`);
  });

  it('commits the finished transactions before it lets the loop turn: another process never waits on a lock held across the turn', async () => {
    const store = new Store(db);
    const committed = () => (other.prepare("SELECT count(*) AS n FROM users WHERE user_id LIKE '@turn%'").get() as { n: number }).n;
    let done = 0;
    let seenWhenTimerRan: { done: number; committed: number; locked: boolean } | undefined;
    const look = () =>
      setImmediate(() => {
        let locked = false;
        try {
          // Another connection's write would wait for this lock: none is held while the loop turns.
          const writer = new SQLite(path, { timeout: 0 });
          try {
            writer.exec('BEGIN IMMEDIATE; ROLLBACK');
          } finally {
            writer.close();
          }
        } catch {
          locked = true;
        }
        seenWhenTimerRan = { done, committed: committed(), locked };
      });
    const work = Array.from({ length: 200 }, (_, i) =>
      store.transaction(async (tx) => {
        await tx.users.create({ user_id: `@turn${i}:test.local`, password_hash: null, created_ts: 1, is_guest: false });
        const until = performance.now() + 1;
        while (performance.now() < until);
        done += 1;
        // Looked at in the loop's next turn, which comes once the connection's turn budget is spent.
        if (done === 5) look();
      }),
    );
    await Promise.all(work);
    assert.ok(seenWhenTimerRan && seenWhenTimerRan.done > 0 && seenWhenTimerRan.done < 200, JSON.stringify(seenWhenTimerRan));
    assert.deepEqual(seenWhenTimerRan, { done: seenWhenTimerRan.done, committed: seenWhenTimerRan.done, locked: false });
    assert.equal(committed(), 200);
  });
});
