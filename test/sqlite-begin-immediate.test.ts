import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { sql } from 'kysely';
import { openDb } from '../src/storage/db.js';
import { freshDatabase } from './helpers/server.js';

/**
 * The checkpoint thread's TRUNCATE resets the WAL. A transaction begun DEFERRED that has read
 * before it would then fail its first write with SQLITE_BUSY_SNAPSHOT ("database is locked", no busy
 * wait): seen as 500s on sends under load (bench/rooms-send.ts). Transactions begin IMMEDIATE, so
 * the checkpoint waits for them instead.
 */
describe('SQLite transactions and the checkpoint thread', () => {
  it('commits a transaction that read, then wrote while another connection tried to reset the WAL', async () => {
    const fresh = await freshDatabase('sqlite');
    const path = (fresh.database.args as { database: string }).database;
    const db = await openDb(fresh.database as Parameters<typeof openDb>[0]);
    // Plays the checkpoint thread: its own connection, no busy timeout.
    const checkpointer = new SQLite(path, { timeout: 0 });
    try {
      await sql`CREATE TABLE scratch (id INTEGER PRIMARY KEY)`.execute(db.kysely);
      await sql`INSERT INTO scratch (id) VALUES (1)`.execute(db.kysely);
      // Everything in the WAL copied: a reader from now on reads the database file alone.
      checkpointer.pragma('wal_checkpoint(PASSIVE)');
      let truncate: { busy: number } | undefined;
      await db.kysely.transaction().execute(async (trx) => {
        const { rows } = await sql<{ n: number }>`SELECT count(*) AS n FROM scratch`.execute(trx);
        assert.equal(rows[0]!.n, 1);
        truncate = (checkpointer.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[])[0];
        await sql`INSERT INTO scratch (id) VALUES (2)`.execute(trx);
      });
      assert.equal(truncate?.busy, 1, 'the reset waited for the transaction (its write lock taken at BEGIN)');
      const { rows } = await sql<{ n: number }>`SELECT count(*) AS n FROM scratch`.execute(db.kysely);
      assert.equal(rows[0]!.n, 2);
    } finally {
      checkpointer.close();
      await db.close();
      await fresh.drop();
    }
  });
});
