import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RateLimiter } from '../src/services/ratelimiter.js';
import { openDb, type Db } from '../src/storage/db.js';
import { Store } from '../src/storage/index.js';
import { freshDatabase, ManualClock, testConfig } from './helpers/server.js';

/**
 * A rate-limited write in a transaction (a room send) waits on PostgreSQL for the bucket's row while
 * another transaction of the same user holds it. Judged at the time it arrived, a bucket moved on by
 * the writes that went first while it waited would refuse it for that wait alone.
 */
describe('rate limits: a take that waited for the bucket (postgres)', () => {
  let db: Db;
  let store: Store;
  let drop: () => Promise<void>;
  before(async () => {
    const fresh = await freshDatabase('postgres');
    db = await openDb(testConfig(0, fresh.database as { name: string; args: Record<string, unknown> }).database);
    store = new Store(db);
    drop = fresh.drop;
  });
  after(async () => {
    await db.close();
    await drop();
  });

  it('is judged at the time it reached the bucket, not the time it arrived', async () => {
    const clock = new ManualClock(1_000_000);
    const limiter = new RateLimiter(store.rateLimits, clock);
    // One a second, bursts of two: interval 1,000 ms, tolerance 1,000 ms.
    const limit = { per_second: 1, burst_count: 2 };
    let waiting: Promise<void> | undefined;
    await store.transaction(async (tx) => {
      await limiter.take('message:@a:test', limit, tx.rateLimits);
      // Arrives now, then waits for the row this transaction holds.
      waiting = limiter.take('message:@a:test', limit);
      await new Promise((resolve) => setTimeout(resolve, 200));
      // Ten seconds pass before this transaction takes again and commits.
      clock.advance(10_000);
      await limiter.take('message:@a:test', limit, tx.rateLimits);
    });
    // Ten seconds after it arrived, one token of the burst is free: the waiting take gets it.
    await waiting;
    // And the bucket is now empty: a third take at the same time is refused.
    await assert.rejects(limiter.take('message:@a:test', limit), (e: { errcode?: string }) => e.errcode === 'M_LIMIT_EXCEEDED');
  });
});
