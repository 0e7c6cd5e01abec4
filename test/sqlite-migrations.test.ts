import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { openDb } from '../src/storage/db.js';
import { migrations } from '../src/storage/migrations/index.js';
import { freshDatabase } from './helpers/server.js';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..');

/** Opens (and so migrates) the SQLite database at `path` in a process of its own. */
function openInAnotherProcess(path: string) {
  const script = `const { openDb } = await import(${JSON.stringify(join(root, 'src/storage/db.ts'))});
const db = await openDb({ name: 'sqlite3', args: { database: ${JSON.stringify(path)} } });
await db.close();`;
  return run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, timeout: 60_000 });
}

describe('SQLite migrations', () => {
  it('several processes starting on one new database at once each find it migrated exactly once', async () => {
    const fresh = await freshDatabase('sqlite');
    const path = (fresh.database.args as { database: string }).database;
    try {
      const outcomes = await Promise.allSettled([1, 2, 3, 4].map(() => openInAnotherProcess(path)));
      assert.deepEqual(
        outcomes.map((o) => (o.status === 'fulfilled' ? 'ok' : String((o.reason as { stderr?: string }).stderr))),
        ['ok', 'ok', 'ok', 'ok'],
      );
      const file = new SQLite(path, { readonly: true });
      try {
        const applied = file.prepare('SELECT name FROM kysely_migration ORDER BY name').pluck().all();
        assert.deepEqual(applied, Object.keys(migrations));
      } finally {
        file.close();
      }
    } finally {
      await fresh.drop();
    }
  });

  it('a migration that fails leaves the database as it found it, not half migrated', async () => {
    const fresh = await freshDatabase('sqlite');
    const path = (fresh.database.args as { database: string }).database;
    try {
      const seed = new SQLite(path);
      // A table in the way of migration 0010: the nine before it run, then 0010 fails.
      seed.exec('CREATE TABLE events (x INTEGER)');
      seed.close();
      await assert.rejects(openDb(fresh.database as Parameters<typeof openDb>[0]), /0010_rooms/);
      const file = new SQLite(path, { readonly: true });
      try {
        const tables = file.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'kysely%' ORDER BY name").pluck().all();
        assert.deepEqual(tables, ['events'], 'no table of the earlier migrations is left behind');
        assert.equal(file.prepare('SELECT count(*) FROM kysely_migration').pluck().get(), 0);
      } finally {
        file.close();
      }
      // With the obstacle gone, the next start migrates from the beginning.
      const fix = new SQLite(path);
      fix.exec('DROP TABLE events');
      fix.close();
      const db = await openDb(fresh.database as Parameters<typeof openDb>[0]);
      await db.close();
    } finally {
      await fresh.drop();
    }
  });
});
