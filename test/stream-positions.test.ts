import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Notifier } from '../src/services/sync/notifier.js';
import { StreamWriter } from '../src/services/sync/stream-writer.js';
import { openDb, type Db } from '../src/storage/db.js';
import { Store } from '../src/storage/index.js';
import { ENGINES, freshDatabase, testConfig, type Engine } from './helpers/server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A store on a fresh database of `engine`, with room in the Postgres pool for `connections` at once. */
async function openStore(engine: Engine, connections = 10): Promise<{ db: Db; store: Store; drop(): Promise<void> }> {
  const fresh = await freshDatabase(engine);
  const raw = fresh.database as { name: string; args: Record<string, unknown> };
  const database = engine === 'postgres' ? { ...raw, args: { ...raw.args, cp_max: connections } } : raw;
  const db = await openDb(testConfig(0, database).database);
  return { db, store: new Store(db), drop: fresh.drop };
}

for (const engine of ENGINES) {
  describe(`global stream positions (${engine})`, () => {
    let db: Db;
    let store: Store;
    let drop: () => Promise<void>;
    let notifier: Notifier;
    let writer: StreamWriter;

    before(async () => {
      ({ db, store, drop } = await openStore(engine));
      notifier = new Notifier();
      writer = new StreamWriter(store, notifier);
    });
    after(async () => {
      await notifier.close();
      await db.close();
      await drop();
    });

    /** One account-data change for each of `users`, in one transaction; its position. */
    const change = (users: string[], type = 'org.example.t') =>
      writer.write(async (tx) => {
        let position = 0;
        for (const user of users) {
          position = await tx.position(user);
          await tx.store.accountData.put(user, '', type, '{}', position);
        }
        return position;
      });

    it('gives every transaction the next position of one sequence, whichever users it concerns', async () => {
      const start = await store.streams.head();
      const positions = [];
      for (const users of [['@alice:x'], ['@bob:x'], ['@carol:x'], ['@alice:x'], ['@bob:x', '@carol:x']]) positions.push(await change(users));
      assert.deepEqual(positions, [1, 2, 3, 4, 5].map((n) => start + n));
      assert.equal(await store.streams.head(), start + 5);
      const rows = await db.kysely.selectFrom('account_data').select(['user_id', 'stream_pos']).orderBy('user_id').execute();
      assert.deepEqual(rows, [
        { user_id: '@alice:x', stream_pos: start + 4 },
        { user_id: '@bob:x', stream_pos: start + 5 },
        { user_id: '@carol:x', stream_pos: start + 5 },
      ]);
    });

    it('takes one position per transaction, only when asked, and gives it back on rollback', async () => {
      const start = await store.streams.head();
      const same = await writer.write(async (tx) => [await tx.position('@a:x'), await tx.position('@b:x'), await tx.position('@a:x')]);
      assert.deepEqual(same, [start + 1, start + 1, start + 1]);
      await writer.write(async (tx) => tx.store.accountData.get('@a:x', '', 'none'));
      assert.equal(await store.streams.head(), start + 1, 'a transaction that asks for no position takes none');
      await assert.rejects(
        writer.write(async (tx) => {
          await tx.position('@a:x');
          throw new Error('rolled back');
        }),
        /rolled back/,
      );
      assert.equal(await store.streams.head(), start + 1);
      assert.equal(await change(['@a:x']), start + 2);
    });

    it('wakes the syncs of the users a change names, with its position, after the commit', async () => {
      const alice = notifier.subscribe('@alice:x');
      const bob = notifier.subscribe('@bob:x');
      let bobWoken = false;
      const bobWait = bob.wait(60_000).then(() => (bobWoken = true));
      const position = await change(['@alice:x']);
      await alice.wait(60_000);
      assert.equal(notifier.latestPosition, position);
      await sleep(50);
      assert.equal(bobWoken, false);
      alice.dispose();
      bob.dispose();
      void bobWait;
    });
  });
}

describe('global stream positions under concurrent writers (postgres)', () => {
  let db: Db;
  let store: Store;
  let drop: () => Promise<void>;
  let notifier: Notifier;
  let writer: StreamWriter;

  before(async () => {
    ({ db, store, drop } = await openStore('postgres', 30));
    notifier = new Notifier();
    writer = new StreamWriter(store, notifier);
  });
  after(async () => {
    await notifier.close();
    await db.close();
    await drop();
  });

  it('gives 20 concurrent writers for different users 20 distinct consecutive positions', async () => {
    const start = await store.streams.head();
    const positions = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        writer.write(async (tx) => {
          await sleep(Math.random() * 20);
          const position = await tx.position(`@writer${i}:x`);
          await tx.store.accountData.put(`@writer${i}:x`, '', 'org.example.c', '{}', position);
          await sleep(Math.random() * 20);
          return position;
        }),
      ),
    );
    assert.deepEqual([...positions].sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => start + i + 1));
  });

  it('keeps a reader’s head below a position whose transaction has not committed', async () => {
    const start = await store.streams.head();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let taken!: () => void;
    const tookPosition = new Promise<void>((resolve) => (taken = resolve));
    const events: string[] = [];
    const held = writer.write(async (tx) => {
      const position = await tx.position('@held:x');
      await tx.store.accountData.put('@held:x', '', 'org.example.h', '{}', position);
      taken();
      await gate;
      events.push('held commits');
      return position;
    });
    await tookPosition;
    // A second writer must wait for the first to commit before it gets a position.
    const next = writer.write(async (tx) => {
      const position = await tx.position('@next:x');
      events.push('next has its position');
      return position;
    });
    for (let i = 0; i < 5; i++) {
      assert.equal(await store.streams.head(), start, 'the head stays below the uncommitted position');
      await sleep(40);
    }
    assert.deepEqual(events, []);
    release();
    assert.equal(await held, start + 1);
    assert.equal(await next, start + 2);
    assert.deepEqual(events, ['held commits', 'next has its position']);
    assert.equal(await store.streams.head(), start + 2);
  });

  it('never shows a reader head P while a change at or below P is uncommitted', async () => {
    const start = await store.streams.head();
    let done = false;
    const writers = Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        writer.write(async (tx) => {
          await sleep(Math.random() * 10);
          const position = await tx.position(`@order${i}:x`);
          await tx.store.accountData.put(`@order${i}:x`, '', 'org.example.order', '{}', position);
          await sleep(Math.random() * 10);
        }),
      ),
    ).finally(() => (done = true));
    let reads = 0;
    while (!done) {
      const head = await store.streams.head();
      const visible = await db.kysely
        .selectFrom('account_data')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('type', '=', 'org.example.order')
        .where('stream_pos', '<=', head)
        .executeTakeFirstOrThrow();
      assert.equal(Number(visible.n), head - start, `at head ${head}, every change up to it is visible`);
      reads++;
    }
    await writers;
    assert.ok(reads > 1, `${reads} reads`);
    assert.equal(await store.streams.head(), start + 20);
  });
});
