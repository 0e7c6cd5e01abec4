import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { startHomeserver } from '../src/homeserver.js';
import { migrations } from '../src/storage/migrations/index.js';
import { Api, freshConnections } from './helpers/api.js';
import { ENGINES, freePort, freshDatabase, testConfig, type Engine } from './helpers/server.js';

/** Undoes migration 0016 on a database no server has open: its tables go, the rest stays. */
async function migrateBeforeDirectories(engine: Engine, database: Record<string, unknown>): Promise<void> {
  const args = database.args as Record<string, unknown>;
  const dialect =
    engine === 'sqlite'
      ? new SqliteDialect({ database: new SQLite(args.database as string) })
      : new PostgresDialect({ pool: new pg.Pool({ host: args.host as string, port: args.port as number, user: args.user as string, database: args.database as string }) });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const db: Kysely<any> = new Kysely({ dialect });
  try {
    const names = Object.keys(migrations).sort();
    const previous = names[names.indexOf('0016_directories') - 1]!;
    const { error } = await new Migrator({ db, provider: { getMigrations: async () => migrations } }).migrateTo(previous);
    assert.equal(error, undefined);
    await assert.rejects(db.selectFrom('room_directory').selectAll().execute(), 'the table is gone');
  } finally {
    await db.destroy();
  }
}

// Both engines: the fill reads stored PDUs and counts memberships with each engine's SQL.
for (const engine of ENGINES) {
  describe(`migration 0016 fills the directories from what is stored (${engine})`, () => {
    it('lists the same rooms and finds the same users after the migration runs on an existing database', async () => {
      const fresh = await freshDatabase(engine);
      const port = await freePort();
      const config = testConfig(port, fresh.database);
      const api = new Api(`http://127.0.0.1:${port}`);
      let hs = await startHomeserver(config);
      try {
        const alice = await api.register('alice');
        const bob = await api.register('bob');
        const carol = await api.register('carol');
        await api.put(`/v3/profile/${encodeURIComponent(alice.user_id)}/displayname`, { displayname: 'Alice Liddell' }, { token: alice.access_token });
        const created = await api.post<{ room_id: string }>(
          '/v3/createRoom',
          { visibility: 'public', preset: 'public_chat', name: 'Tea party', topic: 'Unbirthdays', room_alias_name: 'tea', creation_content: { type: 'm.space' } },
          { token: alice.access_token },
        );
        const roomId = created.body.room_id;
        await api.put(`/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.avatar/`, { url: 'mxc://test.local/hat' }, { token: alice.access_token });
        await api.post(`/v3/join/${encodeURIComponent(roomId)}`, {}, { token: bob.access_token });
        await api.post(`/v3/join/${encodeURIComponent(roomId)}`, {}, { token: carol.access_token });
        await api.post(`/v3/rooms/${encodeURIComponent(roomId)}/leave`, {}, { token: carol.access_token });
        const privateRoom = (await api.post<{ room_id: string }>('/v3/createRoom', { preset: 'private_chat', invite: [carol.user_id] }, { token: bob.access_token })).body.room_id;
        await api.post(`/v3/join/${encodeURIComponent(privateRoom)}`, {}, { token: carol.access_token });

        const rooms = async () => (await api.post('/v3/publicRooms', {}, { token: carol.access_token })).body;
        const users = async (term: string) => (await api.post('/v3/user_directory/search', { search_term: term }, { token: carol.access_token })).body;
        const before = { rooms: await rooms(), lidd: await users('lidd'), bob: await users('bob') };
        assert.equal((before.rooms.chunk as unknown[]).length, 1);
        assert.equal((before.bob.results as unknown[]).length, 1);

        await hs.close();
        await migrateBeforeDirectories(engine, fresh.database);
        hs = await startHomeserver(config);
        freshConnections();

        assert.deepEqual(await rooms(), before.rooms);
        assert.deepEqual(await users('lidd'), before.lidd);
        assert.deepEqual(await users('bob'), before.bob);
        assert.deepEqual((before.rooms.chunk as Record<string, unknown>[])[0], {
          room_id: roomId,
          num_joined_members: 2,
          world_readable: false,
          guest_can_join: false,
          name: 'Tea party',
          topic: 'Unbirthdays',
          canonical_alias: '#tea:test.local',
          avatar_url: 'mxc://test.local/hat',
          join_rule: 'public',
          room_type: 'm.space',
        });
      } finally {
        await hs.close();
        await fresh.drop();
      }
    });
  });
}
