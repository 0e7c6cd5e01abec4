import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { startHomeserver } from '../src/homeserver.js';
import { migrations } from '../src/storage/migrations/index.js';
import { Api, freshConnections } from './helpers/api.js';
import { ENGINES, freePort, freshDatabase, testConfig, type Engine } from './helpers/server.js';

/** Undoes migration 0020 (and any after it) on a database no server has open: the index goes, the events stay. */
async function migrateBeforeSearch(engine: Engine, database: Record<string, unknown>): Promise<void> {
  const args = database.args as Record<string, unknown>;
  const dialect =
    engine === 'sqlite'
      ? new SqliteDialect({ database: new SQLite(args.database as string) })
      : new PostgresDialect({ pool: new pg.Pool({ host: args.host as string, port: args.port as number, user: args.user as string, database: args.database as string }) });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const db: Kysely<any> = new Kysely({ dialect });
  try {
    const names = Object.keys(migrations).sort();
    const previous = names[names.indexOf('0020_event_search') - 1]!;
    const { error } = await new Migrator({ db, provider: { getMigrations: async () => migrations } }).migrateTo(previous);
    assert.equal(error, undefined);
    await assert.rejects(db.selectFrom('event_search').selectAll().execute(), 'the table is gone');
  } finally {
    await db.destroy();
  }
}

const enc = encodeURIComponent;

// Both engines: the fill reads stored PDUs and builds each engine's own index.
for (const engine of ENGINES) {
  describe(`migration 0020 indexes the events already stored (${engine})`, () => {
    it('finds the same events after the migration runs on an existing database, redacted ones left out', async () => {
      const fresh = await freshDatabase(engine);
      const port = await freePort();
      const config = testConfig(port, fresh.database);
      const api = new Api(`http://127.0.0.1:${port}`);
      let hs = await startHomeserver(config);
      try {
        const alice = await api.register('alice');
        const roomId = (await api.post<{ room_id: string }>('/v3/createRoom', { name: 'Nectarine room', topic: 'All about nectarines' }, { token: alice.access_token })).body.room_id;
        const send = async (body: string, txn: string) =>
          (await api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/send/m.room.message/${txn}`, { msgtype: 'm.text', body }, { token: alice.access_token })).body.event_id;
        await send('a nectarine a day', 't1');
        const redacted = await send('nectarine to forget', 't2');
        await api.put(`/v3/rooms/${enc(roomId)}/redact/${enc(redacted)}/r1`, {}, { token: alice.access_token });
        await send('plum only', 't3');

        const search = async () => {
          const res = await api.post<{ search_categories: { room_events: { results: { result: { event_id: string } }[]; count: number } } }>(
            '/v3/search',
            { search_categories: { room_events: { search_term: 'nectarine', order_by: 'recent' } } },
            { token: alice.access_token },
          );
          assert.equal(res.status, 200);
          return res.body.search_categories.room_events;
        };
        const before = await search();
        assert.equal(before.results.length, 3, 'the message, the name and the topic');
        assert.ok(!before.results.some((r) => r.result.event_id === redacted));

        await hs.close();
        await migrateBeforeSearch(engine, fresh.database);
        hs = await startHomeserver(config);
        freshConnections();

        const after = await search();
        assert.deepEqual(after.results.map((r) => r.result.event_id), before.results.map((r) => r.result.event_id));
        assert.equal(after.count, before.count);
      } finally {
        await hs.close();
        await fresh.drop();
      }
    });
  });
}
