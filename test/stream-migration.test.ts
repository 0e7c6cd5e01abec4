import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { hashToken } from '../src/crypto/tokens.js';
import { migrations } from '../src/storage/migrations/index.js';
import { ENGINES, freshDatabase, startTestServer, type Engine, type TestServer } from './helpers/server.js';

type Sync = {
  next_batch: string;
  account_data: { events: { type: string }[] };
  to_device: { events: { type: string }[] };
  device_lists: { changed: string[] };
};

/** The schema as it was before the migration, which the Database type no longer describes. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

const HS = 'test.local';
const user = (name: string) => `@${name}:${HS}`;

/** The database as it was before the global stream: every migration up to the one that brings it. */
async function migrateBeforeGlobalStream(engine: Engine, database: Record<string, unknown>): Promise<AnyDb> {
  const args = database.args as Record<string, unknown>;
  const dialect =
    engine === 'sqlite'
      ? new SqliteDialect({ database: new SQLite(args.database as string) })
      : new PostgresDialect({ pool: new pg.Pool({ host: args.host as string, port: args.port as number, user: args.user as string, database: args.database as string }) });
  const db: AnyDb = new Kysely({ dialect });
  const names = Object.keys(migrations).sort();
  const previous = names[names.indexOf('0009_global_stream') - 1];
  assert.ok(previous, 'a migration brings the global stream, after others');
  const { error } = await new Migrator({ db, provider: { getMigrations: async () => migrations } }).migrateTo(previous);
  assert.equal(error, undefined);
  return db;
}

/**
 * What per-user streams held: alice's positions 1..3, bob's 1..5, dave's 1..4; carol had no stream.
 * Ordered by user ID, the offsets are alice 0, bob 3, dave 8, and the global head 12.
 */
async function writeLegacyStreams(db: AnyDb): Promise<void> {
  const now = Date.now();
  const devices = { alice: ['A1'], bob: ['B1', 'B2'], carol: ['C1'], dave: ['D1'] };
  for (const [name, ids] of Object.entries(devices)) {
    await db.insertInto('users').values({ user_id: user(name), password_hash: null, created_ts: now }).execute();
    for (const id of ids) {
      await db.insertInto('devices').values({ user_id: user(name), device_id: id, created_ts: now }).execute();
      await db.insertInto('access_tokens').values({ token_hash: hashToken(`token-${id}`), user_id: user(name), device_id: id, created_ts: now }).execute();
    }
  }
  await db.insertInto('user_streams').values([
    { user_id: user('alice'), position: 3 },
    { user_id: user('bob'), position: 5 },
    { user_id: user('dave'), position: 4 },
  ]).execute();
  const accountData = (name: string, type: string, pos: number) => ({ user_id: user(name), room_id: '', type, content: '{}', stream_pos: pos });
  await db.insertInto('account_data').values([
    accountData('alice', 'org.a1', 1),
    accountData('alice', 'org.a2', 3),
    accountData('bob', 'org.b1', 1),
    accountData('dave', 'org.d1', 2),
    accountData('dave', 'org.d2', 4),
  ]).execute();
  const toDevice = (name: string, device: string, type: string, pos: number) => ({ user_id: user(name), device_id: device, stream_pos: pos, sender: user('alice'), type, content: '{}' });
  // Bob's messages sit at consecutive positions, closer together than his offset: shifting them in
  // place would collide with the rows not yet shifted.
  await db.insertInto('to_device_inbox').values([
    toDevice('alice', 'A1', 'org.td.a', 2),
    toDevice('bob', 'B1', 'org.td.b2', 2),
    toDevice('bob', 'B1', 'org.td.b3', 3),
    toDevice('bob', 'B1', 'org.td.b4', 4),
    toDevice('bob', 'B1', 'org.td.b5', 5),
  ]).execute();
  await db.insertInto('device_list_changes').values([
    { user_id: user('alice'), stream_pos: 3, changed_user_id: user('alice') },
    { user_id: user('bob'), stream_pos: 4, changed_user_id: user('alice') },
    { user_id: user('dave'), stream_pos: 1, changed_user_id: user('dave') },
  ]).execute();
}

for (const engine of ENGINES) {
  describe(`sync tokens from before the global stream (${engine})`, () => {
    let server: TestServer;
    let drop: () => Promise<void>;
    // set_presence=offline: a sync that sets presence takes a stream position of its own, which would move next_batch.
    const sync = (device: string, since: string) => server.api.get<Sync>(`/v3/sync?since=${since}&set_presence=offline`, { token: `token-${device}` });
    const summary = (res: { body: Sync }) => ({
      account_data: res.body.account_data.events.map((e) => e.type).filter((t) => t !== 'm.push_rules'),
      to_device: res.body.to_device.events.map((e) => e.type),
      device_lists: res.body.device_lists.changed,
    });

    before(async () => {
      const fresh = await freshDatabase(engine);
      drop = fresh.drop;
      const db = await migrateBeforeGlobalStream(engine, fresh.database);
      await writeLegacyStreams(db);
      await db.destroy();
      // Starting the homeserver runs the rest of the migrations.
      server = await startTestServer(engine, {}, { database: fresh.database });
    });
    after(async () => {
      await server.close();
      await drop();
    });

    it('moves every user’s positions onto one global stream, keeping their order, and records the offsets', async () => {
      const db = server.hs.services.store.db.kysely;
      assert.deepEqual(await db.selectFrom('stream_head').select('position').execute(), [{ position: 12 }]);
      const offsets = await db.selectFrom('legacy_stream_offsets').select(['user_id', 'stream_offset', 'legacy_head']).orderBy('user_id').execute();
      assert.deepEqual(offsets, [
        { user_id: user('alice'), stream_offset: 0, legacy_head: 3 },
        { user_id: user('bob'), stream_offset: 3, legacy_head: 5 },
        { user_id: user('dave'), stream_offset: 8, legacy_head: 4 },
      ]);
      const accountData = await db.selectFrom('account_data').select(['type', 'stream_pos']).orderBy('stream_pos').execute();
      assert.deepEqual(accountData, [
        { type: 'org.a1', stream_pos: 1 },
        { type: 'org.a2', stream_pos: 3 },
        { type: 'org.b1', stream_pos: 4 },
        { type: 'org.d1', stream_pos: 10 },
        { type: 'org.d2', stream_pos: 12 },
      ]);
      const toDevice = await db.selectFrom('to_device_inbox').select(['type', 'stream_pos']).orderBy('stream_pos').execute();
      assert.deepEqual(toDevice.map((r) => [r.type, r.stream_pos]), [['org.td.a', 2], ['org.td.b2', 5], ['org.td.b3', 6], ['org.td.b4', 7], ['org.td.b5', 8]]);
      const changes = await db.selectFrom('device_list_changes').select(['user_id', 'stream_pos']).orderBy('stream_pos').execute();
      assert.deepEqual(changes.map((r) => [r.user_id, r.stream_pos]), [[user('alice'), 3], [user('bob'), 7], [user('dave'), 9]]);
      const tables = await db.introspection.getTables();
      assert.ok(!tables.some((t) => t.name === 'user_streams'), 'per-user stream heads are gone');
    });

    it('answers an old token with exactly what followed it in that user’s stream', async () => {
      assert.deepEqual(summary(await sync('A1', 's1')), { account_data: ['org.a2'], to_device: ['org.td.a'], device_lists: [user('alice')] });
      assert.deepEqual(summary(await sync('D1', 's0')), { account_data: ['org.d1', 'org.d2'], to_device: [], device_lists: [user('dave')] });
      assert.deepEqual(summary(await sync('D1', 's4')), { account_data: [], to_device: [], device_lists: [] });
      const bob = await sync('B1', 's2');
      assert.equal(bob.status, 200);
      assert.deepEqual(summary(bob), { account_data: [], to_device: ['org.td.b3', 'org.td.b4', 'org.td.b5'], device_lists: [user('alice')] });
      assert.equal(bob.body.next_batch, 'm1_12');
      // The token it got back carries on from there.
      assert.deepEqual(summary(await sync('B1', bob.body.next_batch)), { account_data: [], to_device: [], device_lists: [] });
      const changes = await server.api.get<{ changed: string[] }>('/v3/keys/changes?from=s3&to=s5', { token: 'token-B1' });
      assert.deepEqual(changes.body.changed, [user('alice')]);
      const none = await server.api.get<{ changed: string[] }>('/v3/keys/changes?from=s4&to=m1_12', { token: 'token-B1' });
      assert.deepEqual(none.body.changed, []);
    });

    it('misses nothing written after the migration, for old tokens beyond a stream’s head or of a user without one', async () => {
      assert.deepEqual(summary(await sync('C1', 's0')), { account_data: [], to_device: [], device_lists: [] });
      for (const name of ['carol', 'bob']) {
        const put = await server.api.put(`/v3/user/${encodeURIComponent(user(name))}/account_data/org.after`, { n: 1 }, { token: `token-${name === 'bob' ? 'B2' : 'C1'}` });
        assert.equal(put.status, 200);
      }
      assert.deepEqual(summary(await sync('C1', 's0')), { account_data: ['org.after'], to_device: [], device_lists: [] });
      // s99 is beyond bob's old head (5): it stands for that head, not for a position past the migration.
      assert.deepEqual(summary(await sync('B2', 's99')), { account_data: ['org.after'], to_device: [], device_lists: [] });
    });
  });
}
