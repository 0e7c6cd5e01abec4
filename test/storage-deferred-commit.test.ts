import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import type { Db } from '../src/storage/db.js';
import { openDb } from '../src/storage/db.js';
import { Store } from '../src/storage/index.js';
import { inlineParameters, stringLiteral } from '../src/storage/simple-query.js';
import { freshDatabase, PG } from './helpers/server.js';

const TRICKY = ["plain", "it's", "back\\slash", "\\'", "''", "E'x'", "$1 and $2", "line\nbreak\ttab", "émoji 🎉 and 中文", '{"body":"a \\"quoted\\" \\\\ thing"}', ''];

describe('statements sent with the commit (PostgreSQL)', () => {
  let db: Db;
  let store: Store;
  let drop: () => Promise<void>;
  const user = (n: string) => `@deferred-${n}:test.local`;
  const create = (userId: string) => store.users.create({ user_id: userId, password_hash: null, created_ts: 1, is_guest: false }).then(() => undefined);
  const insertUser = (userId: string) => ({ sql: 'INSERT INTO users (user_id, password_hash, created_ts, is_guest) VALUES ($1, NULL, 1, 0) RETURNING user_id', parameters: [userId] });

  before(async () => {
    const fresh = await freshDatabase('postgres');
    drop = fresh.drop;
    db = await openDb(fresh.database as Parameters<typeof openDb>[0]);
    store = new Store(db);
  });
  after(async () => {
    await db.close();
    await drop();
  });

  it('writes strings as literals that read back the same, whatever standard_conforming_strings is', async () => {
    const client = new pg.Client({ ...PG, database: 'postgres' });
    await client.connect();
    try {
      for (const setting of ['on', 'off']) {
        await client.query(`SET standard_conforming_strings = ${setting}`);
        for (const value of TRICKY) {
          const { rows } = await client.query<{ v: string }>(`SELECT ${stringLiteral(value)} AS v`);
          assert.equal(rows[0]!.v, value, `${JSON.stringify(value)} with standard_conforming_strings ${setting}`);
        }
      }
      // A parameter's own text is never read as a placeholder: $1's value holds "$2".
      const text = inlineParameters({ sql: 'SELECT $1::text AS a, $2::text AS b, $10::bigint AS c', parameters: ['$2', 'two', 3, 4, 5, 6, 7, 8, 9, 10] });
      const { rows } = await client.query<{ a: string; b: string; c: string | number }>(text);
      assert.deepEqual({ ...rows[0], c: Number(rows[0]!.c) }, { a: '$2', b: 'two', c: 10 });
    } finally {
      await client.end();
    }
  });

  it('sends a deferred statement with the COMMIT, and settles its rows once committed', async () => {
    let rows: Promise<{ user_id: string }[]> | undefined;
    await store.transaction(async (tx) => {
      assert.ok(tx.canDeferToCommit);
      ({ rows } = tx.deferToCommit<{ user_id: string }>(insertUser(user('a'))));
      // Not sent yet: the transaction does not see it.
      assert.equal(await tx.users.exists(user('a')), false);
    });
    assert.deepEqual(await rows, [{ user_id: user('a') }]);
    assert.equal(await store.users.exists(user('a')), true);
  });

  it('drops deferred statements when the transaction rolls back', async () => {
    let rows: Promise<unknown[]> | undefined;
    await assert.rejects(
      store.transaction(async (tx) => {
        ({ rows } = tx.deferToCommit(insertUser(user('b'))));
        throw new Error('changed my mind');
      }),
      /changed my mind/,
    );
    await assert.rejects(rows!, /rolled back/);
    assert.equal(await store.users.exists(user('b')), false);
    // The connection goes back to the pool clean: the next transaction commits only its own.
    await store.transaction(async (tx) => {
      await tx.users.create({ user_id: user('c'), password_hash: null, created_ts: 1, is_guest: false });
    });
    assert.equal(await store.users.exists(user('c')), true);
    assert.equal(await store.users.exists(user('b')), false);
  });

  it('fails the whole transaction when a deferred statement fails', async () => {
    await create(user('taken'));
    let rows: Promise<unknown[]> | undefined;
    const err = await store
      .transaction(async (tx) => {
        await tx.users.create({ user_id: user('d'), password_hash: null, created_ts: 1, is_guest: false });
        ({ rows } = tx.deferToCommit(insertUser(user('e'))));
        tx.deferToCommit(insertUser(user('taken')));
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    assert.equal((err as { code?: string } | undefined)?.code, '23505', 'the unique violation reaches the caller');
    await assert.rejects(rows!);
    for (const name of ['d', 'e']) assert.equal(await store.users.exists(user(name)), false, `${name} was rolled back`);
  });

  it('is refused inside a savepoint and outside a transaction', async () => {
    assert.equal(store.canDeferToCommit, false);
    await store.transaction(async (tx) => {
      await tx.transaction(async (inner) => {
        assert.equal(inner.canDeferToCommit, false);
        assert.throws(() => inner.deferToCommit(insertUser(user('f'))), /outside an outer PostgreSQL transaction/);
      });
    });
    const count = await sql<{ n: string }>`SELECT count(*) AS n FROM users WHERE user_id = ${user('f')}`.execute(db.kysely);
    assert.equal(Number(count.rows[0]!.n), 0);
  });
});
