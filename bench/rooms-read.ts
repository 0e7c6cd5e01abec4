/**
 * Room read benchmark: `npm run bench:rooms-read [-- --duration 5 --rounds 3 --warmup 1 --connections 1
 * --big 100000 --members 1000 --database postgres --only sync,messages,members --profile DIR --no-save]`
 * (or BENCH_DURATION, BENCH_ROUNDS, ... variables, as bench/run.ts).
 *
 * The read-side targets of issue #12, on a fresh SQLite or PostgreSQL database:
 *   - an incremental sync of a user in 100 rooms where one room changed: under 2 ms of server CPU;
 *   - an initial sync of a user in 100 rooms with 20 events each: answers in under 150 ms;
 *   - a /messages page in a room with 100,000 events: within 20% of the time in a room with 100;
 *   - GET /members of a room with 1,000 members: under 50 ms.
 * (Idle long-polls costing no queries is asserted by test/rooms-sync.test.ts; bench/sync-idle.ts
 * measures their CPU.)
 *
 * Myelin runs in a child process. It seeds the rooms itself through its services, untimed: accounts
 * (no password), rooms made with createRoom, and the other events appended with the EventCreator,
 * many per transaction (the big room 1,000 events per transaction: each event still built, authorised,
 * hashed, signed and stored as a send stores it, without the HTTP request and one commit per event).
 * Each case is then one request repeated back to back for `duration` seconds over `connections`
 * keep-alive connections, each latency timed here to the microsecond; the cases run in interleaved
 * rounds and each figure is the median over the rounds. The server's CPU per request comes from
 * process.cpuUsage() in the child, read before and after each run, as bench/run.ts does.
 *
 * With --profile DIR the child records a V8 CPU profile of each case's timed runs (node:inspector,
 * the same profile `node --cpu-prof` writes) as DIR/<case>.cpuprofile. Results go to
 * bench/results/<timestamp>.json with the commit, the load averages and the cost of an fsync.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { freshDatabase } from '../test/helpers/server.js';
import { startChild, type ChildHandle } from './children.js';
import { pathToFileURL } from 'node:url';
import { checkoutOf, commitOf, fsyncCost, load } from './conditions.js';
import { median } from './report.js';

/** What the child builds, and what the parent needs to ask for it. */
interface Scenario {
  reader: { userId: string; token: string };
  historian: { userId: string; token: string };
  syncRooms: string[];
  /** A room-mate of the reader's, who sends the one change of the incremental case. */
  mate: string;
  small: { roomId: string; events: number; middle: string };
  big: { roomId: string; events: number; middle: string };
  crowd: { roomId: string; members: number };
  seedingSeconds: Record<string, number>;
}

interface SeedOptions {
  syncRooms: number;
  eventsPerRoom: number;
  smallEvents: number;
  bigEvents: number;
  members: number;
}

type ToChild =
  | { seed: SeedOptions }
  | { cpu: true }
  | { clearCache: true }
  | { send: { roomId: string; sender: string; body: string } }
  | { profile: 'start' }
  | { profile: 'stop'; file: string };

if (process.env.ROOMS_READ_CHILD === '1') await child();
else await parent();

async function child(): Promise<void> {
  // ROOMS_READ_SRC: another copy of src/ (--src), e.g. main's, for a before/after on the same machine.
  const src = process.env.ROOMS_READ_SRC ?? new URL('../src', import.meta.url).pathname;
  const loadSrc = async <T>(path: string): Promise<T> => (await import(pathToFileURL(`${src}/${path}`).href)) as T;
  const { parseConfig } = await loadSrc<typeof import('../src/config/load.js')>('config/load.ts');
  const { startHomeserver } = await loadSrc<typeof import('../src/homeserver.js')>('homeserver.ts');
  const { encodeRoomToken } = await loadSrc<typeof import('../src/services/rooms/room-token.js')>('services/rooms/room-token.ts');
  // Absent from copies of src/ older than the event cache: the cold-cache case then has nothing to empty.
  const eventCacheOf = existsSync(`${src}/storage/event-cache.ts`)
    ? (await loadSrc<typeof import('../src/storage/event-cache.js')>('storage/event-cache.ts')).eventCacheOf
    : () => ({ clear: () => undefined });
  const { config, warnings } = parseConfig(JSON.parse(process.env.ROOMS_READ_CONFIG!) as Record<string, unknown>);
  if (warnings.length > 0) console.error(warnings.join('\n'));
  const hs = await startHomeserver(config);
  const s = hs.services;
  let session: import('node:inspector').Session | undefined;

  const user = async (localpart: string) => {
    const registered = await s.accounts.register({ localpart, guest: false, inhibitLogin: false, refresh: false, ip: '127.0.0.1' });
    return { userId: registered.user_id, token: registered.access_token! };
  };
  const account = async (localpart: string) => (await s.accounts.register({ localpart, guest: false, inhibitLogin: true, refresh: false, ip: '127.0.0.1' })).user_id;
  /** `count` text messages from the senders in turn, `perTransaction` to a transaction. */
  const messages = async (roomId: string, senders: string[], count: number, perTransaction = 1000) => {
    for (let done = 0; done < count; ) {
      const n = Math.min(perTransaction, count - done);
      await s.eventCreator.write(roomId, async (room) => {
        for (let i = 0; i < n; i++) {
          const k = done + i;
          await room.append(senders[k % senders.length]!, { type: 'm.room.message', content: { msgtype: 'm.text', body: `Message ${k}: the quick brown fox jumps over the lazy dog.` } });
        }
      });
      done += n;
    }
  };
  const eventCount = async (roomId: string) => Number((await s.store.rooms.get(roomId))!.depth);
  /** A /messages token at the room's middle event (by depth). */
  const middle = async (roomId: string) => {
    const depth = Math.floor((await eventCount(roomId)) / 2);
    const [row] = await s.store.events.page(roomId, { depth, pos: Number.MAX_SAFE_INTEGER }, 'b', 1);
    return encodeRoomToken({ depth: Number(row!.depth), pos: Number(row!.stream_pos) });
  };

  const seed = async (o: SeedOptions): Promise<Scenario> => {
    const seedingSeconds: Record<string, number> = {};
    const timed = async <T>(label: string, work: () => Promise<T>): Promise<T> => {
      const start = process.hrtime.bigint();
      const value = await work();
      seedingSeconds[label] = Number((Number(process.hrtime.bigint() - start) / 1e9).toFixed(1));
      return value;
    };
    const reader = await user('reader');
    const historian = await user('historian');
    const alice = await account('alice');
    const bob = await account('bob');

    // The reader's rooms: created by the reader with two room-mates invited, who join; then
    // messages from all three up to `eventsPerRoom` events.
    const syncRooms = await timed('sync_rooms', async () => {
      const ids: string[] = [];
      for (let i = 0; i < o.syncRooms; i++) {
        const { room_id: roomId } = await s.rooms.createRoom(reader.userId, { preset: 'private_chat', name: `Room ${i}`, topic: `Topic of room ${i}`, invite: [alice, bob] });
        await s.rooms.join(alice, roomId);
        await s.rooms.join(bob, roomId);
        await messages(roomId, [reader.userId, alice, bob], Math.max(0, o.eventsPerRoom - (await eventCount(roomId))));
        ids.push(roomId);
      }
      return ids;
    });

    // The /messages rooms: the same history but for its length (the historian and alice talking).
    const historyRoom = async (events: number) => {
      const { room_id: roomId } = await s.rooms.createRoom(historian.userId, { preset: 'private_chat', name: `${events} events`, invite: [alice] });
      await s.rooms.join(alice, roomId);
      await messages(roomId, [historian.userId, alice], Math.max(0, events - (await eventCount(roomId))));
      return roomId;
    };
    const smallId = await timed('small_room', () => historyRoom(o.smallEvents));
    const bigId = await timed('big_room', () => historyRoom(o.bigEvents));

    // The crowded room: public, everyone joins (member events appended 250 to a transaction).
    const crowdId = await timed('crowd_room', async () => {
      const { room_id: roomId } = await s.rooms.createRoom(historian.userId, { preset: 'public_chat', name: 'Crowd' });
      const joiners: string[] = [];
      for (let i = 1; i < o.members; i++) joiners.push(`@member${i}:${config.server_name}`);
      for (let i = 0; i < joiners.length; i += 250) {
        await s.eventCreator.write(roomId, async (room) => {
          for (const userId of joiners.slice(i, i + 250)) {
            await room.append(userId, { type: 'm.room.member', state_key: userId, content: { membership: 'join', displayname: `Member ${userId.slice(7, userId.indexOf(':'))}` } });
          }
        });
      }
      await messages(roomId, joiners.slice(0, 20), 20);
      return roomId;
    });

    return {
      reader,
      historian,
      syncRooms,
      mate: alice,
      small: { roomId: smallId, events: await eventCount(smallId), middle: await middle(smallId) },
      big: { roomId: bigId, events: await eventCount(bigId), middle: await middle(bigId) },
      crowd: { roomId: crowdId, members: (await s.store.rooms.members(crowdId, ['join'])).length },
      seedingSeconds,
    };
  };

  process.send!({ ready: true, url: hs.urls[0] });
  process.on('SIGTERM', () => void hs.close().then(() => process.exit(0)));
  process.on('disconnect', () => void hs.close().then(() => process.exit(0)));
  process.on('message', (message: ToChild) => {
    void (async () => {
      if ('cpu' in message) process.send!({ cpu: process.cpuUsage() });
      else if ('clearCache' in message) {
        eventCacheOf(s.store.db).clear();
        process.send!({ cleared: true });
      }
      else if ('seed' in message) process.send!({ scenario: await seed(message.seed) });
      else if ('send' in message) {
        const { roomId, sender, body } = message.send;
        await s.eventCreator.write(roomId, (room) => room.append(sender, { type: 'm.room.message', content: { msgtype: 'm.text', body } }));
        process.send!({ sent: true });
      } else if (message.profile === 'start') {
        const { Session } = await import('node:inspector');
        session = new Session();
        session.connect();
        const post = (method: string, params?: object) => new Promise<void>((done, fail) => session!.post(method, params ?? {}, (err) => (err ? fail(err) : done())));
        await post('Profiler.enable');
        await post('Profiler.setSamplingInterval', { interval: 100 });
        await post('Profiler.start');
        process.send!({ profiling: true });
      } else if (message.profile === 'stop') {
        const profile = await new Promise<unknown>((done, fail) => session!.post('Profiler.stop', (err, result) => (err ? fail(err) : done(result.profile))));
        session!.disconnect();
        session = undefined;
        writeFileSync(message.file, JSON.stringify(profile));
        process.send!({ profiled: message.file });
      }
    })().catch((err: unknown) => process.send!({ error: String(err instanceof Error ? err.stack : err) }));
  });
}

interface Case {
  name: string;
  /** Short key for --only and profile file names. */
  key: string;
  path: string;
  token: string;
  target?: { kind: 'cpu_us' | 'p50_ms'; limit: number };
  /** Empty the server's event cache before each request (untimed, though its CPU is counted: next to nothing). */
  coldCache?: boolean;
  note?: string;
}

interface Run {
  latenciesMs: number[];
  cpuMicros: number;
  systemMicros: number;
  seconds: number;
  non2xx: number;
  loadBefore: number;
  loadAfter: number;
}

interface ResultRow {
  name: string;
  requests: number;
  rps: number;
  mean_ms: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  cpuPerRequestUs: number;
  /** Of which in the kernel (system calls: sockets, the log file, SQLite's file reads). */
  systemPerRequestUs: number;
  perRound: { requests: number; p50_ms: number; mean_ms: number; cpu_us: number; system_us: number; load_before: number; load_after: number }[];
  non2xx: number;
  target?: string;
  meets?: boolean;
  note?: string;
}

async function parent(): Promise<void> {
  const { values: flags } = parseArgs({
    options: {
      duration: { type: 'string', default: process.env.BENCH_DURATION ?? '5' },
      rounds: { type: 'string', default: process.env.BENCH_ROUNDS ?? '3' },
      warmup: { type: 'string', default: process.env.BENCH_WARMUP ?? '1' },
      connections: { type: 'string', default: process.env.BENCH_CONNECTIONS ?? '1' },
      only: { type: 'string', default: process.env.BENCH_ONLY },
      database: { type: 'string', default: process.env.BENCH_DATABASE ?? 'sqlite' },
      big: { type: 'string', default: process.env.BENCH_BIG_ROOM ?? '100000' },
      members: { type: 'string', default: process.env.BENCH_MEMBERS ?? '1000' },
      profile: { type: 'string', default: process.env.BENCH_PROFILE },
      /** Another copy of src/ to run (e.g. main's, exported with git archive), instead of this checkout's. */
      src: { type: 'string', default: process.env.BENCH_SRC },
      /** A directory that keeps the seeded database (and its scenario) for the next run with the same --keep and engine. */
      keep: { type: 'string', default: process.env.BENCH_KEEP },
      'log-level': { type: 'string', default: process.env.BENCH_LOG_LEVEL ?? 'info' },
      'no-save': { type: 'boolean', default: false },
    },
  });
  const DURATION = Number(flags.duration);
  const ROUNDS = Number(flags.rounds);
  const WARMUP = Number(flags.warmup);
  const CONNECTIONS = Number(flags.connections);
  if (!(DURATION > 0) || !(ROUNDS >= 1) || !(WARMUP >= 0) || !(CONNECTIONS >= 1)) throw new Error('--duration, --rounds, --warmup and --connections must be positive numbers');
  const DATABASE = flags.database;
  if (DATABASE !== 'sqlite' && DATABASE !== 'postgres') throw new Error('--database must be sqlite or postgres');
  const ONLY = flags.only?.split(',').map((o) => o.trim());
  const profileDir = flags.profile ? resolve(flags.profile) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });

  const dir = mkdtempSync(join(tmpdir(), 'myelin-rooms-read-'));
  const loadBefore = load();
  const fsync = fsyncCost(dir);
  // --keep: the database, its signing key and the scenario stay in that directory for the next run.
  const keepDir = flags.keep ? resolve(flags.keep, DATABASE) : undefined;
  if (keepDir) mkdirSync(keepDir, { recursive: true });
  const kept = keepDir && existsSync(join(keepDir, 'scenario.json')) ? (JSON.parse(readFileSync(join(keepDir, 'scenario.json'), 'utf8')) as { database: Record<string, unknown>; scenario: Scenario; seedOptions: SeedOptions }) : undefined;
  const fresh = kept ? undefined : DATABASE === 'postgres' ? await freshDatabase('postgres') : undefined;
  const database = kept?.database ?? fresh?.database ?? { name: 'sqlite3', args: { database: join(keepDir ?? dir, 'homeserver.db') } };
  const generous = { per_second: 1_000_000, burst_count: 1_000_000 };
  const config = {
    server_name: 'bench.local',
    listeners: [{ port: 0, bind_addresses: ['127.0.0.1'] }],
    database,
    macaroon_secret_key: 'bench-outbox-secret',
    signing_key_path: join(keepDir ?? dir, 'bench.local.signing.key'),
    log_level: flags['log-level'],
    enable_registration: false,
    rc_message: generous,
    rc_login: { address: generous, account: generous, failed_attempts: generous },
  };

  let server: ChildHandle | undefined;
  try {
    const childEnv: Record<string, string> = { ROOMS_READ_CHILD: '1', ROOMS_READ_CONFIG: JSON.stringify(config) };
    if (flags.src) childEnv.ROOMS_READ_SRC = resolve(flags.src);
    server = await startChild('rooms-read.ts', childEnv, join(dir, 'server.log'));
    const ask = async <T>(message: ToChild, key: string): Promise<T> => (await server!.request(message, key, 3_600_000))[key] as T;
    const { port } = new URL(server.url);
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS + 4 });
    const get = (path: string, token: string) =>
      new Promise<{ status: number; text: string }>((done, fail) => {
        const req = http.request({ host: '127.0.0.1', port, path, agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => done({ status: res.statusCode ?? 0, text }));
        });
        req.on('error', fail);
        req.end();
      });
    const getJson = async (path: string, token: string) => {
      const res = await get(path, token);
      if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${res.text.slice(0, 300)}`);
      return JSON.parse(res.text) as Record<string, unknown>;
    };

    const seedOptions: SeedOptions = kept?.seedOptions ?? { syncRooms: 100, eventsPerRoom: 20, smallEvents: 100, bigEvents: Number(flags.big), members: Number(flags.members) };
    process.stderr.write(`seeding: ${JSON.stringify(seedOptions)} on ${DATABASE}\n`);
    const sc = kept?.scenario ?? (await ask<Scenario>({ seed: seedOptions }, 'scenario'));
    if (kept) process.stderr.write(`reusing the database seeded in ${JSON.stringify(sc.seedingSeconds)} s (${keepDir})\n`);
    else process.stderr.write(`seeded in ${JSON.stringify(sc.seedingSeconds)} s\n`);
    if (keepDir && !kept) writeFileSync(join(keepDir, 'scenario.json'), JSON.stringify({ database, scenario: sc, seedOptions }));

    // The incremental case: a since token, then one message in one of the reader's rooms.
    const V3 = '/_matrix/client/v3';
    const enc = encodeURIComponent;
    // The first initial sync after start: caches cold (an empty event cache on a reused database).
    const coldStart = process.hrtime.bigint();
    const initial = await getJson(`${V3}/sync`, sc.reader.token);
    const coldInitialMs = Number((Number(process.hrtime.bigint() - coldStart) / 1e6).toFixed(1));
    const joined = Object.keys((initial.rooms as { join: Record<string, unknown> }).join);
    if (joined.length !== sc.syncRooms.length) throw new Error(`initial sync has ${joined.length} rooms, expected ${sc.syncRooms.length}`);
    const since = initial.next_batch as string;
    await ask({ send: { roomId: sc.syncRooms[0]!, sender: sc.mate, body: 'the one change' } }, 'sent');
    const incremental = await getJson(`${V3}/sync?since=${enc(since)}&timeout=30000`, sc.reader.token);
    const changed = (incremental.rooms as { join: Record<string, { timeline: { events: unknown[] } }> }).join;
    if (Object.keys(changed).length !== 1 || changed[sc.syncRooms[0]!]?.timeline.events.length !== 1) throw new Error(`the incremental sync is not one room with one event: ${JSON.stringify(changed).slice(0, 500)}`);

    const lazy = enc(JSON.stringify({ lazy_load_members: true }));
    const messagesPath = (roomId: string, from?: string) => `${V3}/rooms/${enc(roomId)}/messages?dir=b&limit=20&filter=${lazy}${from ? `&from=${enc(from)}` : ''}`;
    const cases: Case[] = [
      {
        name: 'whoami (reference: authentication, routing, logging)',
        key: 'reference',
        path: `${V3}/account/whoami`,
        token: sc.reader.token,
        note: 'a floor for the cases below under the same load: what any authenticated request costs',
      },
      {
        name: `incremental /sync, ${sc.syncRooms.length} rooms, 1 changed`,
        key: 'sync-incremental',
        path: `${V3}/sync?since=${enc(since)}&timeout=30000`,
        token: sc.reader.token,
        target: { kind: 'cpu_us', limit: 2000 },
        note: 'the same since token each time (one new message in one room); timeout=30000 as clients send it, answered at once',
      },
      {
        name: `initial /sync, ${sc.syncRooms.length} rooms x ${seedOptions.eventsPerRoom} events`,
        key: 'sync-initial',
        path: `${V3}/sync`,
        token: sc.reader.token,
        target: { kind: 'p50_ms', limit: 150 },
        note: 'no filter: timeline limit 10, full state (9 state events) and summary per room',
      },
      {
        name: `initial /sync, ${sc.syncRooms.length} rooms x ${seedOptions.eventsPerRoom} events, event cache emptied before each`,
        key: 'sync-initial-cold',
        path: `${V3}/sync`,
        token: sc.reader.token,
        coldCache: true,
        target: { kind: 'p50_ms', limit: 150 },
        note: 'every event read from the database and parsed again (the database\'s own cache stays warm)',
      },
      { name: `/messages latest 20, ${sc.small.events}-event room`, key: 'messages-small-latest', path: messagesPath(sc.small.roomId), token: sc.historian.token },
      { name: `/messages latest 20, ${sc.big.events}-event room`, key: 'messages-big-latest', path: messagesPath(sc.big.roomId), token: sc.historian.token },
      { name: `/messages 20 from the middle, ${sc.small.events}-event room`, key: 'messages-small-middle', path: messagesPath(sc.small.roomId, sc.small.middle), token: sc.historian.token },
      { name: `/messages 20 from the middle, ${sc.big.events}-event room`, key: 'messages-big-middle', path: messagesPath(sc.big.roomId, sc.big.middle), token: sc.historian.token },
      {
        name: `/members, ${sc.crowd.members} members`,
        key: 'members',
        path: `${V3}/rooms/${enc(sc.crowd.roomId)}/members`,
        token: sc.historian.token,
        target: { kind: 'p50_ms', limit: 50 },
      },
    ];
    const selected = cases.filter((c) => !ONLY || ONLY.some((o) => c.key.includes(o) || c.name.includes(o)));
    for (const c of selected) await getJson(c.path, c.token);

    const cpu = () => ask<NodeJS.CpuUsage>({ cpu: true }, 'cpu');
    /** One case run: requests back to back on each connection for `seconds`. */
    const runCase = async (c: Case, seconds: number): Promise<Run> => {
      const latenciesMs: number[] = [];
      let non2xx = 0;
      const lb = load()[0]!;
      const cpuBefore = await cpu();
      const start = process.hrtime.bigint();
      const end = start + BigInt(Math.round(seconds * 1e9));
      await Promise.all(
        Array.from({ length: CONNECTIONS }, async () => {
          while (process.hrtime.bigint() < end) {
            if (c.coldCache) await ask({ clearCache: true }, 'cleared');
            const t0 = process.hrtime.bigint();
            const res = await get(c.path, c.token);
            latenciesMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
            if (res.status !== 200) non2xx++;
          }
        }),
      );
      const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
      const cpuAfter = await cpu();
      const cpuMicros = cpuAfter.user + cpuAfter.system - (cpuBefore.user + cpuBefore.system);
      return { latenciesMs, cpuMicros, systemMicros: cpuAfter.system - cpuBefore.system, seconds: elapsed, non2xx, loadBefore: lb, loadAfter: load()[0]! };
    };

    for (const c of selected) if (WARMUP > 0) await runCase(c, WARMUP);
    const runs = new Map<Case, Run[]>(selected.map((c) => [c, []]));
    for (let round = 1; round <= ROUNDS; round++) {
      for (const c of selected) {
        process.stderr.write(`round ${round}/${ROUNDS}: ${c.name}, ${DURATION}s, ${CONNECTIONS} connection(s)\n`);
        if (profileDir) await ask({ profile: 'start' }, 'profiling');
        runs.get(c)!.push(await runCase(c, DURATION));
        if (profileDir) await ask({ profile: 'stop', file: join(profileDir, `${c.key}-${DATABASE}-r${round}.cpuprofile`) }, 'profiled');
      }
    }

    const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
    const round3 = (x: number) => Number(x.toFixed(3));
    const rows: ResultRow[] = selected.map((c) => {
      const rs = runs.get(c)!;
      const perRound = rs.map((r) => {
        const sorted = [...r.latenciesMs].sort((a, b) => a - b);
        return {
          requests: r.latenciesMs.length,
          rps: r.latenciesMs.length / r.seconds,
          mean_ms: round3(sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length)),
          p50_ms: round3(pct(sorted, 50)),
          p90_ms: round3(pct(sorted, 90)),
          p99_ms: round3(pct(sorted, 99)),
          cpu_us: Math.round(r.cpuMicros / Math.max(1, r.latenciesMs.length)),
          system_us: Math.round(r.systemMicros / Math.max(1, r.latenciesMs.length)),
          load_before: r.loadBefore,
          load_after: r.loadAfter,
        };
      });
      const row: ResultRow = {
        name: c.name,
        requests: perRound.reduce((n, r) => n + r.requests, 0),
        rps: Number(median(perRound.map((r) => r.rps)).toFixed(1)),
        mean_ms: median(perRound.map((r) => r.mean_ms)),
        p50_ms: median(perRound.map((r) => r.p50_ms)),
        p90_ms: median(perRound.map((r) => r.p90_ms)),
        p99_ms: median(perRound.map((r) => r.p99_ms)),
        cpuPerRequestUs: median(perRound.map((r) => r.cpu_us)),
        systemPerRequestUs: median(perRound.map((r) => r.system_us)),
        perRound: perRound.map(({ requests, p50_ms, mean_ms, cpu_us, system_us, load_before, load_after }) => ({ requests, p50_ms, mean_ms, cpu_us, system_us, load_before, load_after })),
        non2xx: rs.reduce((n, r) => n + r.non2xx, 0),
        note: c.note,
      };
      if (c.target) {
        const value = c.target.kind === 'cpu_us' ? row.cpuPerRequestUs : row.p50_ms;
        row.target = c.target.kind === 'cpu_us' ? `server CPU < ${c.target.limit} µs/request` : `p50 < ${c.target.limit} ms`;
        row.meets = value < c.target.limit;
      }
      return row;
    });

    // The big room against the small one: within 20%, by latency and by server CPU.
    const comparisons: { name: string; p50_ratio: number; mean_ratio: number; cpu_ratio: number; target: string; meets: boolean }[] = [];
    for (const which of ['latest', 'middle']) {
      const small = rows[selected.findIndex((c) => c.key === `messages-small-${which}`)];
      const big = rows[selected.findIndex((c) => c.key === `messages-big-${which}`)];
      if (!small || !big) continue;
      const p50Ratio = round3(big.p50_ms / small.p50_ms);
      comparisons.push({
        name: `/messages ${which} page: ${sc.big.events}-event room / ${sc.small.events}-event room`,
        p50_ratio: p50Ratio,
        mean_ratio: round3(big.mean_ms / small.mean_ms),
        cpu_ratio: round3(big.cpuPerRequestUs / small.cpuPerRequestUs),
        target: 'p50 ratio <= 1.2',
        meets: p50Ratio <= 1.2,
      });
    }

    const header = ['Case', 'req/s', 'mean ms', 'p50 ms', 'p90 ms', 'p99 ms', 'CPU µs/req', 'of which sys', 'target', 'met'];
    const cells = rows.map((r) => [
      r.name,
      r.rps.toFixed(0),
      r.mean_ms.toFixed(2),
      r.p50_ms.toFixed(2),
      r.p90_ms.toFixed(2),
      r.p99_ms.toFixed(2),
      r.cpuPerRequestUs.toFixed(0),
      r.systemPerRequestUs.toFixed(0),
      r.target ?? '',
      r.meets === undefined ? '' : r.meets ? 'yes' : 'NO',
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
    const line = (c: string[]) => `| ${c.map((s, i) => (i === 0 || i === 8 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join(' | ')} |`;
    console.log([line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n'));
    for (const c of comparisons) console.log(`${c.name}: p50 x${c.p50_ratio}, mean x${c.mean_ratio}, CPU x${c.cpu_ratio} (${c.target}: ${c.meets ? 'met' : 'NOT met'})`);
    for (const r of rows) if (r.note) console.log(`- ${r.name}: ${r.note}`);

    const loadAfter = load();
    const code = flags.src ? { src: resolve(flags.src), ...commitOf(checkoutOf(resolve(flags.src))) } : commitOf(import.meta.dirname);
    const m = { cpus: cpus().length, cpu_model: cpus()[0]?.model ?? 'unknown', memory_gb: Math.round(totalmem() / 2 ** 30), node: process.version, platform: `${process.platform} ${process.arch}` };
    console.log(
      `\n${DATABASE}; ${DURATION}s x ${ROUNDS} rounds per case, ${CONNECTIONS} connection(s); load average before ${loadBefore.join(' ')}, after ${loadAfter.join(' ')}. ` +
        `Disk: a 4 KiB write + fsync takes ${fsync.median_ms} ms (median of ${fsync.samples}, worst ${fsync.max_ms} ms). ` +
        `Code: ${code?.commit ? `${code.commit.slice(0, 12)}${code.dirty ? ' with uncommitted changes' : ''}` : 'not a git checkout'}${flags.src ? ` (src: ${resolve(flags.src)})` : ''}. Seeding: ${JSON.stringify(sc.seedingSeconds)} s. ` +
        `The first initial sync (cold caches) took ${coldInitialMs} ms.`,
    );
    if (!flags['no-save']) {
      const out = join(import.meta.dirname, 'results');
      mkdirSync(out, { recursive: true });
      const file = join(out, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
      const settings = {
        benchmark: 'rooms-read',
        duration_s: DURATION,
        rounds: ROUNDS,
        warmup_s: WARMUP,
        connections: CONNECTIONS,
        database: DATABASE === 'postgres' ? 'PostgreSQL at 127.0.0.1:5432 (a fresh database)' : 'SQLite (WAL, synchronous=NORMAL)',
        log_level: `${flags['log-level']} (to a file)`,
        load_average_before: loadBefore,
        load_average_after: loadAfter,
        fsync_4k: fsync,
        code: { this_checkout: code },
        scenario: { ...seedOptions, big_room_events: sc.big.events, small_room_events: sc.small.events, crowd_members: sc.crowd.members, seeding_s: sc.seedingSeconds, reused_database: kept !== undefined },
        first_initial_sync_ms: coldInitialMs,
      };
      writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), machine: m, settings, results: rows, comparisons }, null, 2)}\n`);
      console.log(`Results written to ${file}`);
    }
    agent.destroy();
  } finally {
    await server?.stop();
    if (!keepDir) await fresh?.drop().catch((err: unknown) => console.error(`could not drop the benchmark database: ${String(err)}`));
    rmSync(dir, { recursive: true, force: true });
  }
}
