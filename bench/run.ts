/**
 * Myelin's benchmark: `npm run bench [-- --duration 10 --rounds 3 --connections 50 --warmup 2
 * --only whoami,login --log-level info --no-save --no-email --mail-rate 1000 --database postgres --compare ../old/src]` (or BENCH_DURATION,
 * BENCH_ROUNDS, ... variables).
 *
 * Starts a bare Node HTTP server, Myelin (a fresh SQLite or PostgreSQL database, production settings except for
 * generous rate limits) and an SMTP sink, each in its own child process, drives each endpoint with
 * autocannon for a fixed time, and prints requests/s, p99 latency and the ratio to the bare server.
 * Everything listens on 127.0.0.1 and the run stops by itself. Results also go to
 * bench/results/<timestamp>.json.
 *
 * The room cases (`--only roomSend`, bench/rooms-send.ts) send messages with each connection its own
 * user, into a room per connection or all into one room, rc_message lifted like the other limits.
 * Their Storm twins (`--only roomSendStorm`) run the same sends while other users post 100 read
 * receipts/s into one sender's room, and the two are printed side by side.
 *
 * The machine may be shared (and has few cores), so the cases run in interleaved rounds, each figure
 * is the median over the rounds, and the CPU time each server process spends per request is reported
 * too: unlike requests/s, it hardly depends on what else the machine is running.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { checkoutOf, commitOf, fsyncCost, load } from './conditions.js';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { freshDatabase } from '../test/helpers/server.js';
import { startChild, freePort, type ChildHandle } from './children.js';
import { postgresCpuMicros } from './postgres-cpu.js';
import { EMAIL_CASE_NAMES, EmailBench, MAIL_USERS, emailConfig, mailAddress } from './email.js';
import { formatLoopDelays, formatTable, median, type Row } from './report.js';
import type { LoopDelay } from './loop-delay.js';
import { ROOM_CASE_NAMES, RoomSendBench, stormComparison } from './rooms-send.js';

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: process.env.BENCH_DURATION ?? '10' },
    rounds: { type: 'string', default: process.env.BENCH_ROUNDS ?? '3' },
    warmup: { type: 'string', default: process.env.BENCH_WARMUP ?? '2' },
    connections: { type: 'string', default: process.env.BENCH_CONNECTIONS ?? '50' },
    only: { type: 'string', default: process.env.BENCH_ONLY },
    'log-level': { type: 'string', default: process.env.BENCH_LOG_LEVEL ?? 'info' },
    'no-save': { type: 'boolean', default: false },
    'no-email': { type: 'boolean', default: process.env.BENCH_NO_EMAIL === '1' },
    /** The fixed rate of the second requestToken case, where the question is whether mail keeps up. */
    'mail-rate': { type: 'string', default: process.env.BENCH_MAIL_RATE ?? '1000' },
    /** sqlite (a fresh file) or postgres (a fresh database at 127.0.0.1:5432, dropped at the end). */
    database: { type: 'string', default: process.env.BENCH_DATABASE ?? 'sqlite' },
    /** Another copy of src/ (e.g. an older checkout's) to run side by side, in the same rounds. */
    compare: { type: 'string', default: process.env.BENCH_COMPARE },
  },
});
const DURATION = Number(flags.duration);
const ROUNDS = Number(flags.rounds);
const WARMUP = Number(flags.warmup);
const CONNECTIONS = Number(flags.connections);
if (!(DURATION > 0) || !(ROUNDS >= 1) || !(WARMUP >= 0) || !(CONNECTIONS > 0)) {
  throw new Error('--duration, --rounds, --warmup and --connections must be positive numbers');
}
const ONLY = flags.only?.split(',').map((s) => s.trim());
const DATABASE = flags.database;
if (DATABASE !== 'sqlite' && DATABASE !== 'postgres') throw new Error('--database must be sqlite or postgres');

const PASSWORD = 'correct horse battery staple 42';
const SERVER_NAME = 'bench.local';

export interface Case {
  name: string;
  server: ChildHandle;
  method: 'GET' | 'POST' | 'PUT';
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** Builds each request afresh (e.g. a new client_secret per request). */
  setupRequest?: (req: autocannon.Request) => autocannon.Request;
  /** Sets up each connection (e.g. its own user and room) when the run opens it. */
  setupClient?: (client: autocannon.Client) => void;
  /** Untimed work around each run (warm-ups included). */
  before?: () => Promise<void>;
  after?: (result: autocannon.Result) => Promise<void>;
  /** A fixed offered load (requests/s over all connections) instead of as fast as possible. */
  overallRate?: number;
  note?: string;
  /** A second, lighter load on the same server for the whole run, whose latency is reported on its own. */
  alongside?: Alongside;
}

/** E.g. whoami on a few connections while requestToken floods the server: does a cheap request stay fast? */
export interface Alongside {
  name: string;
  method?: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** Binds each of its connections (e.g. to a user of its own), as Case.setupClient. */
  setupClient?: (client: autocannon.Client) => void;
  connections: number;
  /** Requests/s over its connections: low, so that its CPU hardly counts in the case's CPU per request. */
  rate: number;
}

interface Run {
  result: autocannon.Result;
  /** CPU time the server process used during the run, in microseconds. */
  cpuMicros: number;
  /** CPU time the PostgreSQL backends of the server's database used during the run (see postgresCpuMicros). */
  pgCpuMicros?: number;
  /** The machine's load averages when the run started and when it ended. */
  loadBefore: number[];
  loadAfter: number[];
  alongside?: autocannon.Result;
  /** The server's event-loop delay during the run. */
  loop?: LoopDelay;
}

/** The PostgreSQL database of each Myelin under benchmark (with --database postgres), whose backends' CPU is read around each run. */
const databaseOf = new Map<ChildHandle, string>();

async function runCase(c: Case, duration: number): Promise<Run> {
  const request: autocannon.Request = { method: c.method, path: c.path, headers: c.headers, body: c.body };
  if (c.setupRequest) request.setupRequest = c.setupRequest;
  await c.before?.();
  const loadBefore = load();
  const database = databaseOf.get(c.server);
  const pgBefore = database === undefined ? undefined : await postgresCpuMicros(database);
  // Also starts the server's event-loop delay afresh for this run.
  const { cpuMicros: before } = await c.server.cpuAndLoop();
  const a = c.alongside;
  const beside = a
    ? autocannon({ url: c.server.url, connections: a.connections, duration, requests: [{ method: a.method ?? 'GET', path: a.path, headers: a.headers, body: a.body }], timeout: 30, overallRate: a.rate, setupClient: a.setupClient })
    : undefined;
  const result = await autocannon({ url: c.server.url, connections: CONNECTIONS, duration, requests: [request], timeout: 30, overallRate: c.overallRate, setupClient: c.setupClient });
  const alongside = await beside;
  const after = await c.server.cpuAndLoop();
  const cpuMicros = after.cpuMicros - before;
  const pgAfter = database === undefined ? undefined : await postgresCpuMicros(database);
  const pgCpuMicros = pgBefore === undefined || pgAfter === undefined ? undefined : pgAfter - pgBefore;
  const loadAfter = load();
  await c.after?.(result);
  return { result, cpuMicros, pgCpuMicros, loadBefore, loadAfter, alongside, loop: after.loop };
}

/** Median figures per case over the rounds; ratios are against the bare server's medians. */
function summarise(cases: Case[], runs: Map<Case, Run[]>, bare: Case): Row[] {
  const cpuPerRequest = (rs: Run[]) => median(rs.map((r) => r.cpuMicros / Math.max(1, r.result.requests.total)));
  const bareRps = median(runs.get(bare)!.map((r) => r.result.requests.average));
  const bareCpu = cpuPerRequest(runs.get(bare)!);
  return cases.map((c) => {
    const rs = runs.get(c)!;
    const rps = median(rs.map((r) => r.result.requests.average));
    const cpu = cpuPerRequest(rs);
    return {
      name: c.name,
      rps,
      rpsPerRound: rs.map((r) => Math.round(r.result.requests.average)),
      p50: median(rs.map((r) => r.result.latency.p50)),
      p99: median(rs.map((r) => r.result.latency.p99)),
      ratio: rps / bareRps,
      cpuPerRequestUs: cpu,
      cpuRatio: bareCpu / cpu,
      pgCpuPerRequestUs: rs.every((r) => r.pgCpuMicros !== undefined) ? median(rs.map((r) => r.pgCpuMicros! / Math.max(1, r.result.requests.total))) : undefined,
      total: rs.reduce((n, r) => n + r.result.requests.total, 0),
      non2xx: rs.reduce((n, r) => n + r.result.non2xx, 0),
      errors: rs.reduce((n, r) => n + r.result.errors, 0),
      note: c.note,
      alongside: alongsideSummary(c, rs),
      loadPerRound: rs.map((r) => ({ before: r.loadBefore[0]!, after: r.loadAfter[0]! })),
      loopPerRound: rs.every((r) => r.loop !== undefined) ? rs.map((r) => r.loop!) : undefined,
    };
  });
}

function alongsideSummary(c: Case, rs: Run[]): Row['alongside'] {
  const results = rs.flatMap((r) => (r.alongside ? [r.alongside] : []));
  if (!c.alongside || results.length === 0) return undefined;
  return {
    name: c.alongside.name,
    connections: c.alongside.connections,
    rate: c.alongside.rate,
    rps: median(results.map((r) => r.requests.average)),
    p50: median(results.map((r) => r.latency.p50)),
    p99: median(results.map((r) => r.latency.p99)),
    p99PerRound: results.map((r) => r.latency.p99),
    non2xx: results.reduce((n, r) => n + r.non2xx, 0),
    errors: results.reduce((n, r) => n + r.errors, 0),
  };
}

/** The mail queue kept up with a run when what was left queued at its end is under a second's worth of its requests. */
function keepsUp(r: { requestsPerSecond: number; backlogAtEnd: number }): boolean {
  return r.backlogAtEnd < Math.max(1, r.requestsPerSecond);
}

async function http(base: string, method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

function myelinConfig(port: number, database: Record<string, unknown>): Record<string, unknown> {
  // Production defaults (argon2id at the default cost, info logging to a file, SQLite in WAL mode),
  // except rate limits, raised so that the figures measure the server and not the limiter.
  const generous = { per_second: 1_000_000, burst_count: 1_000_000 };
  return {
    server_name: SERVER_NAME,
    public_baseurl: `http://127.0.0.1:${port}/`,
    listeners: [{ port, bind_addresses: ['127.0.0.1'] }],
    database,
    // Queued mail is encrypted with it; PostgreSQL needs one set (SQLite would make a key file).
    macaroon_secret_key: 'bench-outbox-secret',
    log_level: flags['log-level'],
    enable_registration: false,
    rc_login: { address: generous, account: generous, failed_attempts: generous },
    rc_registration: generous,
    rc_message: generous,
  };
}

async function startMyelin(dir: string, database: Record<string, unknown>, options: { src?: string; sinkPort?: number; rooms?: boolean }): Promise<ChildHandle> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const config = { ...myelinConfig(port, database), ...(options.sinkPort ? emailConfig(options.sinkPort) : {}) };
  const env: Record<string, string> = { BENCH_MYELIN_CONFIG: JSON.stringify(config) };
  if (options.src) env.BENCH_MYELIN_SRC = resolve(options.src);
  const myelin = await startChild('myelin-server.ts', env, join(dir, 'myelin.log'));
  const users: { localpart: string; password: string; email?: string }[] = [{ localpart: 'bench', password: PASSWORD }];
  if (options.sinkPort) for (let i = 0; i < MAIL_USERS; i++) users.push({ localpart: `bench-mail-${i}`, password: PASSWORD, email: mailAddress(i) });
  if (options.rooms) users.push(...RoomSendBench.seedUsers(CONNECTIONS, PASSWORD));
  await myelin.request({ seed: users }, 'seeded', 600_000);
  return myelin;
}

const WHOAMI_PATH = '/_matrix/client/v3/account/whoami';
/** The light whoami load run beside the requestToken flood (its CPU, ~1% of the case's, is counted in it). */
const ALONGSIDE = { connections: 4, rate: 200 };

const LOGIN_BODY = { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'bench' }, password: PASSWORD };

/** The account endpoints of one Myelin process, checked once by hand before they are timed. */
async function myelinCases(myelin: ChildHandle, label: string): Promise<Case[]> {
  const login = await http(myelin.url, 'POST', '/_matrix/client/v3/login', LOGIN_BODY);
  if (login.status !== 200) throw new Error(`login for the benchmark user failed: ${JSON.stringify(login.json)}`);
  const token = login.json.access_token as string;
  const whoami = await http(myelin.url, 'GET', '/_matrix/client/v3/account/whoami', undefined, token);
  if (whoami.status !== 200) throw new Error(`whoami failed: ${JSON.stringify(whoami.json)}`);
  return [
    { name: `GET /_matrix/client/versions${label}`, server: myelin, method: 'GET', path: '/_matrix/client/versions' },
    {
      name: `GET /_matrix/client/v3/account/whoami${label}`,
      server: myelin,
      method: 'GET',
      path: WHOAMI_PATH,
      headers: { authorization: `Bearer ${token}` },
    },
    {
      name: `POST /_matrix/client/v3/login${label}`,
      server: myelin,
      method: 'POST',
      path: '/_matrix/client/v3/login',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(LOGIN_BODY),
      note: 'argon2id with the default cost (m=19456 KiB, t=2, p=1) on the thread pool; each login creates a device and a token',
    },
  ];
}

function machine() {
  return {
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model ?? 'unknown',
    memory_gb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'myelin-bench-'));
  const children: ChildHandle[] = [];
  const databases: { drop(): Promise<void> }[] = [];
  // The run must end by itself whatever happens: a generous bound over the planned work.
  const bound = setTimeout(
    () => {
      console.error('benchmark exceeded its time bound; stopping');
      for (const c of children) c.kill();
      process.exit(2);
    },
    (20 * (ROUNDS * DURATION + WARMUP) + 600) * 1000,
  );
  bound.unref();
  const loadBefore = load();
  // Measured before anything starts, on the disk the SQLite databases live on.
  const fsync = fsyncCost(dir);
  try {
    const bare = await startChild('bare-server.ts', {}, join(dir, 'bare.log'));
    children.push(bare);
    const bareCase: Case = { name: 'bare node:http (constant JSON)', server: bare, method: 'GET', path: '/' };
    const cases: Case[] = [bareCase];
    // Reference points for the framework's share: Fastify alone, and with a logger and a log line per request.
    for (const log of ['0', '1']) {
      const fastify = await startChild('bare-fastify.ts', { BENCH_FASTIFY_LOG: log, BENCH_FASTIFY_LOG_FILE: join(dir, 'fastify.log') }, join(dir, 'fastify.out'));
      children.push(fastify);
      const name = log === '1' ? 'bare Fastify + pino, a log line per request' : 'bare Fastify (constant JSON)';
      cases.push({ name, server: fastify, method: 'GET', path: '/' });
    }
    const variants: { label: string; src?: string }[] = [{ label: '' }];
    if (flags.compare) variants.push({ label: ` [${flags.compare}]`, src: flags.compare });
    // Email: each Myelin gets a live SMTP sink of its own, in its own process, that receives its mails.
    const wantEmail = !flags['no-email'] && (!ONLY || ONLY.some((o) => EMAIL_CASE_NAMES.some((name) => name.includes(o))));
    const emails: { label: string; bench: EmailBench }[] = [];
    const wantRooms = !ONLY || ONLY.some((o) => ROOM_CASE_NAMES.some((name) => name.includes(o)));
    const roomBenches: { label: string; bench: RoomSendBench }[] = [];
    for (const [i, variant] of variants.entries()) {
      const sink = wantEmail ? await startChild('smtp-sink.ts', {}, join(dir, `sink-${i}.log`)) : undefined;
      if (sink) children.push(sink);
      let database: Record<string, unknown> = { name: 'sqlite3', args: { database: join(dir, `myelin-${i}`, 'homeserver.db') } };
      if (DATABASE === 'postgres') {
        const fresh = await freshDatabase('postgres');
        databases.push(fresh);
        database = fresh.database;
      }
      const myelin = await startMyelin(join(dir, `myelin-${i}`), database, { src: variant.src, sinkPort: sink ? Number(new URL(sink.url).port) : undefined, rooms: wantRooms });
      children.push(myelin);
      if (DATABASE === 'postgres') databaseOf.set(myelin, String((database.args as { database: string }).database));
      cases.push(...(await myelinCases(myelin, variant.label)));
      if (wantRooms) {
        const bench = new RoomSendBench(myelin, CONNECTIONS, PASSWORD, variant.label);
        await bench.setUp();
        cases.push(...bench.cases());
        roomBenches.push({ label: variant.label, bench });
      }
      if (sink) {
        const bench = new EmailBench(myelin, sink, Number(flags['mail-rate']), variant.label);
        await bench.check();
        const whoami = cases.find((c) => c.server === myelin && c.path === WHOAMI_PATH)!;
        cases.push(...bench.cases({ name: `GET whoami beside it${variant.label}`, path: WHOAMI_PATH, headers: whoami.headers, ...ALONGSIDE }));
        emails.push({ label: variant.label, bench });
      }
    }

    const selected = cases.filter((c) => c.name.startsWith('bare ') || !ONLY || ONLY.some((o) => c.name.includes(o)));
    for (const c of selected) if (WARMUP > 0) await runCase(c, WARMUP);
    const runs = new Map<Case, Run[]>(selected.map((c) => [c, []]));
    for (let round = 1; round <= ROUNDS; round++) {
      for (const c of selected) {
        process.stderr.write(`round ${round}/${ROUNDS}: ${c.name}, ${DURATION}s, ${CONNECTIONS} connections\n`);
        runs.get(c)!.push(await runCase(c, DURATION));
      }
    }
    const mail = [];
    for (const { label, bench } of emails) {
      mail.push({ myelin: label.trim() || 'this checkout', perRun: bench.mailRates, submitFreshPerRun: bench.submitFresh, ...(await bench.drain(120_000)) });
    }

    const rows = summarise(selected, runs, bareCase);
    const rooms = roomBenches.map(({ label, bench }) => ({ myelin: label.trim() || 'this checkout', sendToSync: bench.probeSummary(ROUNDS), perRun: bench.probeRuns }));
    const m = machine();
    const settings = {
      duration_s: DURATION,
      rounds: ROUNDS,
      warmup_s: WARMUP,
      connections: CONNECTIONS,
      database: DATABASE === 'postgres' ? 'PostgreSQL at 127.0.0.1:5432 (a fresh database per Myelin)' : 'SQLite (WAL, synchronous=NORMAL)',
      log_level: `${flags['log-level']} (to a file)`,
      load_average_before: loadBefore,
      load_average_after: load(),
      fsync_4k: fsync,
      code: { this_checkout: commitOf(import.meta.dirname), ...(flags.compare ? { compared: { src: flags.compare, ...commitOf(checkoutOf(flags.compare)) } } : {}) },
    };
    console.log(formatTable(rows));
    console.log(formatLoopDelays(rows));
    for (const r of rows) {
      const a = r.alongside;
      if (!a) continue;
      console.log(
        `\n${a.name} (${a.connections} connections offering ${a.rate}/s, during "${r.name}"): ${a.rps.toFixed(0)} req/s, p50 ${a.p50} ms, ` +
          `p99 ${a.p99} ms (per round ${a.p99PerRound.join(' / ')} ms), ${a.non2xx} non-2xx, ${a.errors} errors`,
      );
    }
    const storms = stormComparison(rows);
    if (storms.length > 0) console.log(`\nSends with a receipt storm against the same sends without (medians over the rounds):\n  ${storms.join('\n  ')}`);
    for (const m of mail) {
      const runsText = m.perRun
        .map((r) => `${r.offered ? `offered ${r.offered}/s` : 'flat out'}: ${r.requestsPerSecond} req/s -> ${r.mailsPerSecond} mails/s sent during the run, ${r.backlogAtEnd} queued at its end (${keepsUp(r) ? 'keeps up' : 'falls behind'})`)
        .join('\n  ');
      console.log(`\nMail from ${m.myelin}, per requestToken run (warm-ups included):\n  ${runsText}`);
      console.log(
        `Mails promised (2xx requestToken answers, warm-up included) ${m.promised}, received by the sink ${m.received}` +
          ` (${m.unreadable} without a readable link and code) after waiting ${(m.waitedMs / 1000).toFixed(1)} s at the end.`,
      );
      console.log(`submit_url runs validated ${m.submitFreshPerRun.join(' / ')} fresh sessions (the rest repeated a validated one).`);
    }
    for (const r of rooms) {
      const text =
        typeof r.sendToSync === 'string'
          ? r.sendToSync
          : r.sendToSync
              .map((p) => `${p.caseName}: p50 ${p.p50_ms.toFixed(1)} ms, p99 ${p.p99_ms.toFixed(1)} ms; after the send's answer p50 ${p.after_answer_p50_ms.toFixed(1)} ms, p99 ${p.after_answer_p99_ms.toFixed(1)} ms (${p.samples} messages)`)
              .join('\n  ');
      console.log(`\nSend to a room-mate's waiting /sync, in a quiet room beside each run, from ${r.myelin}:\n  ${text}`);
    }
    console.log(
      `\nMachine: ${m.cpus} cores (${m.cpu_model}), ${m.memory_gb} GB, Node ${m.node}, ${m.platform}. The load generator ` +
        '(autocannon, one process), the bare server, Myelin and the SMTP sink each run in their own process on these same cores, ' +
        'so requests/s include competition with the load generator (and anything else running) for CPU; CPU per request much less so.',
    );
    console.log(
      `${DURATION}s x ${ROUNDS} rounds per case, ${CONNECTIONS} connections; load average before ${settings.load_average_before.join(' ')}, ` +
        `after ${settings.load_average_after.join(' ')}.`,
    );
    const code = settings.code.this_checkout;
    console.log(
      `Disk: a 4 KiB write + fsync takes ${fsync.median_ms} ms (median of ${fsync.samples}, worst ${fsync.max_ms} ms). ` +
        `Code: ${code ? `${code.commit.slice(0, 12)}${code.dirty ? ' with uncommitted changes' : ''}` : 'not a git checkout'}.`,
    );
    if (!flags['no-save']) {
      const out = join(import.meta.dirname, 'results');
      mkdirSync(out, { recursive: true });
      const file = join(out, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
      writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), machine: m, settings, results: rows, mail, rooms }, null, 2)}\n`);
      console.log(`Results written to ${file}`);
    }
  } finally {
    for (const c of children) await c.stop();
    for (const db of databases) await db.drop().catch((err: unknown) => console.error(`could not drop a benchmark database: ${String(err)}`));
    rmSync(dir, { recursive: true, force: true });
    clearTimeout(bound);
  }
}

await main();
