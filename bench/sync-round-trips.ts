/**
 * Counts the statements one /sync sends to the database: `npx tsx bench/sync-round-trips.ts
 * [--database sqlite|postgres] [--rooms 100] [--src DIR] [--no-save]` (--src: another copy of src/, e.g. main's,
 * for a before/after). On PostgreSQL each statement is a round trip to the server.
 *
 * A user in `rooms` rooms (each with a room-mate), with device keys, one-time and fallback keys
 * uploaded; then, counted: an incremental sync after one message in one room (timeout=30000, as
 * clients send it, answered at once), the same with a to-device message as well, an incremental
 * sync with nothing new and timeout=0, and a long-poll that waits until a message wakes it.
 * Results also go to bench/results/round-trips-<engine>-<timestamp>.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort, freshDatabase, rawTestConfig } from '../test/helpers/server.js';
import { checkoutOf, commitOf, load } from './conditions.js';

const { values: flags } = parseArgs({ options: { database: { type: 'string', default: 'sqlite' }, rooms: { type: 'string', default: '100' }, src: { type: 'string' }, 'no-save': { type: 'boolean', default: false } } });
const engine = flags.database === 'postgres' ? 'postgres' : 'sqlite';
const src = flags.src ? resolve(flags.src) : new URL('../src', import.meta.url).pathname;
const { parseConfig } = (await import(pathToFileURL(`${src}/config/load.ts`).href)) as typeof import('../src/config/load.js');
const { startHomeserver } = (await import(pathToFileURL(`${src}/homeserver.ts`).href)) as typeof import('../src/homeserver.js');

// Counted where every statement passes: node-postgres's Client.query, better-sqlite3's Statement methods.
// ROUND_TRIPS_TRACE=1 prints each statement's first words.
let count = 0;
const trace = process.env.ROUND_TRIPS_TRACE === '1';
const require = createRequire(import.meta.url);
const pg = require('pg') as { Client: { prototype: Record<string, (...args: unknown[]) => unknown> } };
const pgQuery = pg.Client.prototype.query!;
pg.Client.prototype.query = function (this: unknown, ...args: unknown[]) {
  count++;
  if (trace) console.error(`statement ${count}: ${String(typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string }).text).replace(/\s+/g, ' ').slice(0, 100)}`);
  return pgQuery.apply(this, args);
};
const SQLite = require('better-sqlite3') as new (path: string) => { prepare(sql: string): object; close(): void };
const probe = new SQLite(':memory:');
const statementProto = Object.getPrototypeOf(probe.prepare('SELECT 1')) as Record<string, (...args: unknown[]) => unknown>;
probe.close();
for (const method of ['all', 'run', 'get', 'iterate']) {
  const original = statementProto[method]!;
  statementProto[method] = function (this: { source: string }, ...args: unknown[]) {
    count++;
    if (trace) console.error(`statement ${count}: ${this.source.replace(/\s+/g, ' ').slice(0, 100)}`);
    return original.apply(this, args);
  };
}

const dir = mkdtempSync(join(tmpdir(), 'myelin-round-trips-'));
const fresh = engine === 'postgres' ? await freshDatabase('postgres') : undefined;
const database = fresh?.database ?? { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } };
const port = await freePort();
const generous = { per_second: 1_000_000, burst_count: 1_000_000 };
const raw = rawTestConfig(port, database, { signing_key_path: join(dir, 'signing.key'), rc_message: generous, log_level: 'warn' });
const { config } = parseConfig(raw);
const hs = await startHomeserver(config);
try {
  const base = `http://127.0.0.1:${port}/_matrix/client/v3`;
  const call = async <T>(method: string, path: string, token: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  const s = hs.services;
  const register = async (localpart: string) => {
    const r = await s.accounts.register({ localpart, guest: false, inhibitLogin: false, refresh: false, ip: '127.0.0.1' });
    return { userId: r.user_id, token: r.access_token!, deviceId: r.device_id! };
  };
  const reader = await register('reader');
  const mate = await register('mate');
  const rooms: string[] = [];
  for (let i = 0; i < Number(flags.rooms); i++) {
    const { room_id: roomId } = await s.rooms.createRoom(reader.userId, { preset: 'private_chat', name: `Room ${i}`, invite: [mate.userId] });
    await s.rooms.join(mate.userId, roomId);
    rooms.push(roomId);
  }
  const deviceKeys = { user_id: reader.userId, device_id: reader.deviceId, algorithms: ['m.olm.v1.curve25519-aes-sha2'], keys: { [`curve25519:${reader.deviceId}`]: 'k' }, signatures: {} };
  await call('POST', '/keys/upload', reader.token, {
    device_keys: deviceKeys,
    one_time_keys: { 'signed_curve25519:AAAA': { key: 'a', signatures: {} } },
    fallback_keys: { 'signed_curve25519:BBBB': { key: 'b', fallback: true, signatures: {} } },
  });

  type Sync = { next_batch: string };
  let txn = 0;
  const send = (roomId: string) => call('PUT', `/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t${txn++}`, mate.token, { msgtype: 'm.text', body: 'hello' });
  const counted = async <T>(work: () => Promise<T>): Promise<{ value: T; statements: number }> => {
    const before = count;
    if (trace) console.error('--- counted');
    const value = await work();
    return { value, statements: count - before };
  };
  const results: Record<string, number> = {};

  let since = (await call<Sync>('GET', '/sync', reader.token)).next_batch;
  // Warm-up: caches, prepared statements, the event cache.
  for (let i = 0; i < 3; i++) {
    await send(rooms[0]!);
    since = (await call<Sync>('GET', `/sync?since=${since}&timeout=30000`, reader.token)).next_batch;
  }
  await send(rooms[1]!);
  const one = await counted(() => call<Sync>('GET', `/sync?since=${since}&timeout=30000`, reader.token));
  results['incremental, 1 room changed'] = one.statements;
  since = one.value.next_batch;

  await send(rooms[2]!);
  await call('PUT', `/sendToDevice/m.test/d${txn++}`, mate.token, { messages: { [reader.userId]: { [reader.deviceId]: { hello: 1 } } } });
  const withToDevice = await counted(() => call<Sync>('GET', `/sync?since=${since}&timeout=30000`, reader.token));
  results['incremental, 1 room changed and a to-device message'] = withToDevice.statements;
  since = withToDevice.value.next_batch;

  const nothing = await counted(() => call<Sync>('GET', `/sync?since=${since}&timeout=0`, reader.token));
  results['incremental, nothing new, timeout=0'] = nothing.statements;
  since = nothing.value.next_batch;

  // A send's own statements, with no sync waiting, to take off the woken long-poll's count below.
  const sendAlone = await counted(() => send(rooms[3]!));
  since = (await call<Sync>('GET', `/sync?since=${since}&timeout=0`, reader.token)).next_batch;

  const before = count;
  const waiting = call<Sync>('GET', `/sync?since=${since}&timeout=20000`, reader.token);
  while (s.notifier.waiting === 0) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 300));
  results['long-poll: to start waiting'] = count - before;
  const woken = await counted(async () => {
    await send(rooms[4]!);
    await waiting;
  });
  results['long-poll: woken by a message (the send\'s statements taken off)'] = woken.statements - sendAlone.statements;

  const report = { benchmark: 'sync-round-trips', date: new Date().toISOString(), engine, rooms: rooms.length, code: { src, ...commitOf(checkoutOf(src)) }, load_average: load(), statements: results };
  console.log(JSON.stringify(report, null, 2));
  if (!flags['no-save']) {
    const out = join(import.meta.dirname, 'results');
    mkdirSync(out, { recursive: true });
    const file = join(out, `round-trips-${engine}-${report.date.replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`Results written to ${file}`);
  }
} finally {
  await hs.close();
  await fresh?.drop();
  rmSync(dir, { recursive: true, force: true });
}
