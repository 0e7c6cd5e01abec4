/**
 * Start-up time and memory of the production build against the TypeScript sources under tsx.
 *
 *   npx tsx bench/startup.ts [--rounds 5] [--requests 3000] [--no-build] [--compare DIR] [--dist-only]
 *
 * Builds dist/ (npm run build) unless --no-build, then, in interleaved rounds, starts each variant
 * as its own process on its own SQLite database (already migrated by a warm-up start, so a round
 * measures a restart, not a first start) and records:
 * - start-up: from spawning the process to the first 200 answer of GET /_matrix/client/versions
 *   (polled every 5 ms);
 * - the CPU time (user + system) the process had used by then, less sensitive to the machine's load;
 * - RSS right after start-up (VmRSS), and after `--requests` requests (half /versions, half
 *   /account/whoami, 10 at a time), with the peak (VmHWM).
 * Variants: `node dist/main.js`; `node --import tsx src/main.ts` with tsx's transform cache warm
 * (as every start after the first); the same with the cache off (TSX_DISABLE_CACHE=1: the first
 * start after a change). `npm run dev` starts the tsx CLI, which runs the second in a child process
 * of its own (another Node process).
 * With --compare DIR, another checkout's build (`node dist/main.js` in DIR, built there first
 * unless --no-build) runs beside them, e.g. main's; --dist-only leaves the tsx variants out.
 * Figures include the process's children (tsx's esbuild service). Medians are printed and written to
 * bench/results/startup-<timestamp>.json with the load average and the commit.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from './children.js';
import { commitOf, load } from './conditions.js';

const ROOT = join(import.meta.dirname, '..');
const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    requests: { type: 'string', default: '3000' },
    'no-build': { type: 'boolean', default: false },
    compare: { type: 'string' },
    'dist-only': { type: 'boolean', default: false },
  },
});
const COMPARE = flags.compare === undefined ? undefined : resolve(flags.compare);
const ROUNDS = Number(flags.rounds);
const REQUESTS = Number(flags.requests);

interface Variant {
  name: string;
  args: string[];
  env?: Record<string, string>;
  /** Where it runs: this checkout unless set. */
  cwd?: string;
}

const VARIANTS: Variant[] = [
  { name: 'node dist/main.js', args: ['dist/main.js'] },
  ...(flags['dist-only']
    ? []
    : [
        { name: 'node --import tsx src/main.ts (cache warm)', args: ['--import', 'tsx', 'src/main.ts'] },
        { name: 'node --import tsx src/main.ts (cache off)', args: ['--import', 'tsx', 'src/main.ts'], env: { TSX_DISABLE_CACHE: '1' } },
      ]),
  ...(COMPARE ? [{ name: `node dist/main.js in ${COMPARE}`, args: ['dist/main.js'], cwd: COMPARE }] : []),
];

interface Sample {
  startup_ms: number;
  startup_cpu_ms: number;
  rss_started_mb: number;
  rss_after_load_mb: number;
  peak_rss_mb: number;
  load_ms: number;
}


/** The process and its children (tsx's esbuild service runs as one): pids. */
function processTree(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return [pid, ...children];
}

/** Resident memory (VmRSS) and its peak (VmHWM) of the process and its children, in MB. */
function memoryMb(pid: number): { rss: number; peak: number } {
  let rss = 0;
  let peak = 0;
  for (const p of processTree(pid)) {
    const status = readFileSync(`/proc/${p}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    rss += kb('VmRSS') / 1024;
    peak += kb('VmHWM') / 1024;
  }
  return { rss, peak };
}

/** CPU time (user + system) the process and its children have used so far, in ms: less sensitive to load than wall time. */
function cpuMs(pid: number): number {
  const tick = 1000 / 100; // USER_HZ
  let total = 0;
  for (const p of processTree(pid)) {
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    total += (Number(fields[11]) + Number(fields[12])) * tick;
  }
  return total;
}

async function waitForVersions(url: string, deadline: number): Promise<void> {
  for (;;) {
    try {
      const res = await fetch(`${url}/_matrix/client/versions`);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer in time`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Sends `count` requests, `concurrency` at a time: /versions and whoami in turn. */
async function drive(url: string, token: string, count: number, concurrency = 10): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const res = await fetch(i % 2 === 0 ? `${url}/_matrix/client/versions` : `${url}/_matrix/client/v3/account/whoami`, i % 2 === 0 ? {} : { headers: { authorization: `Bearer ${token}` } });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`request ${i}: ${res.status}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

async function register(url: string, username: string): Promise<string> {
  const post = (body: unknown) => fetch(`${url}/_matrix/client/v3/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json() as Promise<Record<string, unknown>>);
  const first = await post({ username, password: 'benchmark password' });
  const done = await post({ username, password: 'benchmark password', auth: { type: 'm.login.dummy', session: first.session } });
  if (typeof done.access_token !== 'string') throw new Error(`register: ${JSON.stringify(done)}`);
  return done.access_token;
}

/** One start of `variant` on `dir`'s database: start-up time and memory before and after load. */
async function measure(variant: Variant, dir: string, round: number): Promise<Sample> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = {
    server_name: 'localhost',
    public_baseurl: `${url}/`,
    listeners: [{ port, bind_addresses: ['127.0.0.1'] }],
    database: { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } },
    signing_key_path: join(dir, 'signing.key'),
    log_level: 'warn',
    enable_registration: true,
    enable_registration_without_verification: true,
    // Production password hashing; only the registration rate limit is raised for the benchmark's account.
    rc_registration: { per_second: 100, burst_count: 100 },
  };
  const configPath = join(dir, 'homeserver.yaml');
  writeFileSync(configPath, JSON.stringify(config));
  const started = performance.now();
  const child = spawn(process.execPath, [...variant.args, 'start', '--config', configPath], {
    cwd: variant.cwd ?? ROOT,
    env: { PATH: process.env.PATH, ...variant.env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    await waitForVersions(url, Date.now() + 120_000);
    const startupMs = performance.now() - started;
    const startupCpuMs = cpuMs(child.pid!);
    const afterStart = memoryMb(child.pid!);
    const token = await register(url, `bench${round}`);
    const loadStarted = performance.now();
    await drive(url, token, REQUESTS);
    const loadMs = performance.now() - loadStarted;
    const afterLoad = memoryMb(child.pid!);
    return {
      startup_ms: Math.round(startupMs),
      startup_cpu_ms: Math.round(startupCpuMs),
      rss_started_mb: Number(afterStart.rss.toFixed(1)),
      rss_after_load_mb: Number(afterLoad.rss.toFixed(1)),
      peak_rss_mb: Number(afterLoad.peak.toFixed(1)),
      load_ms: Math.round(loadMs),
    };
  } finally {
    child.kill('SIGTERM');
    const code = await exited;
    if (code !== 0) console.error(`${variant.name}: exit code ${code}`);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function main(): Promise<void> {
  const loadAtStart = load();
  let buildMs: number | undefined;
  if (!flags['no-build']) {
    const t = performance.now();
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
    buildMs = Math.round(performance.now() - t);
    if (COMPARE) execFileSync('npm', ['run', 'build'], { cwd: COMPARE, stdio: 'inherit' });
  }
  const work = mkdtempSync(join(tmpdir(), 'myelin-startup-'));
  const samples = new Map<string, Sample[]>(VARIANTS.map((v) => [v.name, []]));
  const loads: number[][] = [loadAtStart];
  try {
    const dirs = new Map<string, string>();
    for (const variant of VARIANTS) {
      const dir = join(work, String(dirs.size));
      mkdirSync(dir);
      dirs.set(variant.name, dir);
      await measure(variant, dir, -1); // warm-up: migrates the database, fills tsx's cache
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const variant of VARIANTS) {
        const sample = await measure(variant, dirs.get(variant.name)!, round);
        samples.get(variant.name)!.push(sample);
        console.log(`round ${round + 1}/${ROUNDS} ${variant.name}: ${JSON.stringify(sample)}`);
      }
      loads.push(load());
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }

  const summary = VARIANTS.map((v) => {
    const s = samples.get(v.name)!;
    const of = (key: keyof Sample) => ({ median: median(s.map((x) => x[key])), min: Math.min(...s.map((x) => x[key])), max: Math.max(...s.map((x) => x[key])) });
    return { variant: v.name, startup_ms: of('startup_ms'), startup_cpu_ms: of('startup_cpu_ms'), rss_started_mb: of('rss_started_mb'), rss_after_load_mb: of('rss_after_load_mb'), peak_rss_mb: of('peak_rss_mb') };
  });
  console.log(`\n${ROUNDS} rounds, ${REQUESTS} requests each; load average ${loads.map((l) => l[0]).join(' -> ')}${buildMs ? `; npm run build took ${buildMs} ms` : ''}\n`);
  console.log('| variant | start-up to first /versions, ms | CPU time to it, ms | RSS after start, MB | RSS after load, MB | peak RSS, MB |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const row of summary) {
    const cell = (x: { median: number; min: number; max: number }) => `${x.median} (${x.min}-${x.max})`;
    console.log(`| ${row.variant} | ${cell(row.startup_ms)} | ${cell(row.startup_cpu_ms)} | ${cell(row.rss_started_mb)} | ${cell(row.rss_after_load_mb)} | ${cell(row.peak_rss_mb)} |`);
  }
  const out = join(import.meta.dirname, 'results', `startup-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(join(import.meta.dirname, 'results'), { recursive: true });
  writeFileSync(out, `${JSON.stringify({ conditions: { node: process.version, load_average: loads, code: commitOf(ROOT), ...(COMPARE ? { compare: { checkout: COMPARE, ...commitOf(COMPARE) } } : {}), rounds: ROUNDS, requests: REQUESTS, build_ms: buildMs }, summary, samples: Object.fromEntries(samples) }, null, 2)}\n`);
  console.log(`\nwritten to ${out}`);
}

await main();
