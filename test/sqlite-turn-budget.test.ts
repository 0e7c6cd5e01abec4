import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
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
  before(async () => {
    const fresh = await freshDatabase('sqlite');
    drop = fresh.drop;
    db = await openDb(fresh.database as Parameters<typeof openDb>[0]);
  });
  after(async () => {
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
});
