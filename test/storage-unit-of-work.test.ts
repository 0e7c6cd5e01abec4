import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Db } from '../src/storage/db.js';
import { openDb } from '../src/storage/db.js';
import { Store } from '../src/storage/index.js';
import { ENGINES, freshDatabase } from './helpers/server.js';

// A nested transaction that waits for the outer one's connection would hang: fail instead.
const BOUNDED = { timeout: 5000 };

for (const engine of ENGINES) {
  describe(`one unit of work: nested transactions (${engine})`, () => {
    let db: Db;
    let store: Store;
    let drop: () => Promise<void>;
    let n = 0;
    const newUser = () => `@uow${++n}:test.local`;
    const create = (s: Store, userId: string) => s.users.create({ user_id: userId, password_hash: null, created_ts: 1, is_guest: false });

    before(async () => {
      const fresh = await freshDatabase(engine);
      drop = fresh.drop;
      db = await openDb(fresh.database as Parameters<typeof openDb>[0]);
      store = new Store(db);
    });
    after(async () => {
      await db.close();
      await drop();
    });

    it('runs a nested transaction on the outer one: it sees the uncommitted write, and both commit together', BOUNDED, async () => {
      const outerUser = newUser();
      const innerUser = newUser();
      await store.transaction(async (tx) => {
        await create(tx, outerUser);
        await tx.transaction(async (inner) => {
          assert.ok(await inner.users.exists(outerUser), 'the nested transaction sees the outer write');
          await create(inner, innerUser);
        });
        assert.ok(await tx.users.exists(innerUser), 'the outer transaction sees the nested write');
        if (engine === 'postgres') {
          // Another connection sees nothing of either yet: nothing committed before the outer commit.
          assert.equal(await store.users.exists(innerUser), false);
          assert.equal(await store.users.exists(outerUser), false);
        }
      });
      assert.ok(await store.users.exists(outerUser));
      assert.ok(await store.users.exists(innerUser));
    });

    it('rolls the nested work back when the outer transaction fails', BOUNDED, async () => {
      const outerUser = newUser();
      const innerUser = newUser();
      await assert.rejects(
        store.transaction(async (tx) => {
          await create(tx, outerUser);
          await tx.transaction((inner) => create(inner, innerUser));
          throw new Error('outer fails');
        }),
        /outer fails/,
      );
      assert.equal(await store.users.exists(outerUser), false);
      assert.equal(await store.users.exists(innerUser), false);
    });

    it('undoes only the nested part when its failure is caught, and the outer work still commits', BOUNDED, async () => {
      const outerUser = newUser();
      const innerUser = newUser();
      const ran: string[] = [];
      await store.transaction(async (tx) => {
        await create(tx, outerUser);
        tx.afterCommit(() => ran.push('outer'));
        await assert.rejects(
          tx.transaction(async (inner) => {
            await create(inner, innerUser);
            inner.afterCommit(() => ran.push('inner'));
            // A failed statement: on Postgres it aborts the transaction unless rolled back to the savepoint.
            await inner.users.create({ user_id: newUser(), password_hash: null, created_ts: null as unknown as number, is_guest: false });
          }),
        );
        assert.equal(await tx.users.exists(innerUser), false, 'the nested write is undone');
        assert.ok(await tx.users.exists(outerUser), 'the outer transaction is still usable');
      });
      assert.ok(await store.users.exists(outerUser));
      assert.equal(await store.users.exists(innerUser), false);
      assert.deepEqual(ran, ['outer'], "the failed nested part's afterCommit callback is dropped");
    });

    it('runs afterCommit callbacks once, after the outer commit, and never on rollback', BOUNDED, async () => {
      const ran: string[] = [];
      await store.transaction(async (tx) => {
        tx.afterCommit(() => ran.push('outer'));
        await tx.transaction(async (inner) => {
          inner.afterCommit(() => ran.push('inner'));
          await inner.transaction(async (innermost) => {
            innermost.afterCommit(() => ran.push('innermost'));
          });
        });
        assert.deepEqual(ran, [], 'nothing runs when a nested transaction ends');
      });
      assert.deepEqual(ran, ['outer', 'inner', 'innermost']);

      const rolledBack: string[] = [];
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.transaction(async (inner) => inner.afterCommit(() => rolledBack.push('inner')));
          tx.afterCommit(() => rolledBack.push('outer'));
          throw new Error('roll back');
        }),
        /roll back/,
      );
      assert.deepEqual(rolledBack, []);
      assert.deepEqual(ran, ['outer', 'inner', 'innermost'], 'callbacks of a committed transaction do not run again');
    });

    it('refuses two nested transactions side by side, and a bound Store used after its commit', BOUNDED, async () => {
      let stale: Store | undefined;
      await store.transaction(async (tx) => {
        stale = tx;
        let release!: () => void;
        const gate = new Promise<void>((resolve) => (release = resolve));
        const first = tx.transaction(() => gate);
        await assert.rejects(tx.transaction(async () => undefined), /one at a time/);
        release();
        await first;
      });
      await assert.rejects(stale!.users.exists('@x:test.local'), /already committed/);
    });
  });
}
