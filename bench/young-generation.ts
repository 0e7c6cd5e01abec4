/**
 * What the size of V8's young generation costs the built server under request load: CPU time per
 * request and requests/s with each `--max-semi-space-size` given, side by side in interleaved rounds.
 *
 *   npx tsx bench/young-generation.ts [--semi 0,4,2] [--rounds 2] [--duration 8] [--no-build] [--compare DIR]
 *
 * `0` is Node's default (16 MB semi-spaces on 64-bit Node 20). Each round starts `node
 * --max-semi-space-size=N dist/main.js start` per value on a fresh SQLite database, registers a
 * user who joins 3 rooms with 20 messages each, then drives `/account/whoami` and `/sync` (full
 * state, no timeout) with autocannon, 20 connections. CPU time is the server process's (all its
 * threads) from /proc. With --compare DIR, another checkout's build (built there first unless
 * --no-build) runs in the same rounds with Node's default, as `compare`. Medians over the rounds are printed and written to
 * bench/results/young-generation-<timestamp>.json with the load average and the commit.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { startBuiltServer } from './built-server.js';
import { commitOf, load } from './conditions.js';

const ROOT = join(import.meta.dirname, '..');
const { values: flags } = parseArgs({
  options: {
    semi: { type: 'string', default: '0,4,2' },
    rounds: { type: 'string', default: '2' },
    duration: { type: 'string', default: '8' },
    'no-build': { type: 'boolean', default: false },
    compare: { type: 'string' },
  },
});
const COMPARE = flags.compare === undefined ? undefined : resolve(flags.compare);
const SEMIS = flags.semi.split(',').map(Number);
const ROUNDS = Number(flags.rounds);
const DURATION = Number(flags.duration);
const CLOCK_TICK = 100; // USER_HZ on Linux

const cpuSeconds = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICK;
};
const rssMb = (pid: number) => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

async function call(url: string, method: string, path: string, token?: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(url + path, { method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as Record<string, unknown>;
}

async function startServer(semi: number, cwd = ROOT): Promise<{ child: ChildProcess; url: string; token: string; dir: string }> {
  const { child, url, dir } = await startBuiltServer({
    prefix: 'myelin-young-gen-',
    cwd,
    nodeArgs: semi > 0 ? [`--max-semi-space-size=${semi}`] : [],
    extra: { rc_message: { per_second: 10000, burst_count: 10000 } },
  });
  const reg = await call(url, 'POST', '/_matrix/client/v3/register', undefined, { username: 'bench', password: 'bench password 1', auth: { type: 'm.login.dummy' } });
  const token = reg.access_token as string;
  for (let r = 0; r < 3; r++) {
    const { room_id } = (await call(url, 'POST', '/_matrix/client/v3/createRoom', token, { name: `room ${r}` })) as { room_id: string };
    for (let m = 0; m < 20; m++) await call(url, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(room_id)}/send/m.room.message/t${r}-${m}`, token, { msgtype: 'm.text', body: `message ${m}` });
  }
  return { child, url, token, dir };
}

async function drive(url: string, path: string, token: string, pid: number) {
  const cpuBefore = cpuSeconds(pid);
  const result = await autocannon({ url: url + path, connections: 20, duration: DURATION, headers: { authorization: `Bearer ${token}` } });
  const cpu = cpuSeconds(pid) - cpuBefore;
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${path}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return { rps: result.requests.average, cpu_us_per_req: (cpu * 1e6) / result.requests.total, rss_mb: rssMb(pid) };
}

if (!flags['no-build']) for (const dir of [ROOT, ...(COMPARE ? [COMPARE] : [])]) execFileSync('npm', ['run', 'build'], { cwd: dir, stdio: 'inherit' });
const CASES = { whoami: '/_matrix/client/v3/account/whoami', sync: '/_matrix/client/v3/sync' };
type Figures = Awaited<ReturnType<typeof drive>>;
const runs: Record<string, Record<string, Figures[]>> = {};
const loadBefore = load();
for (let round = 0; round < ROUNDS; round++) {
  for (const variant of [...SEMIS.map(String), ...(COMPARE ? ['compare'] : [])]) {
    const server = variant === 'compare' ? await startServer(0, COMPARE) : await startServer(Number(variant));
    try {
      for (const [name, path] of Object.entries(CASES)) {
        const figures = await drive(server.url, path, server.token, server.child.pid!);
        ((runs[variant] ??= {})[name] ??= []).push(figures);
        console.log(`round ${round + 1} ${variant === 'compare' ? 'compare' : `semi ${variant === '0' ? 'default' : variant}`} ${name}: ${figures.rps.toFixed(0)} req/s, ${figures.cpu_us_per_req.toFixed(0)} µs CPU/req, RSS ${figures.rss_mb.toFixed(0)} MB`);
      }
    } finally {
      server.child.kill('SIGTERM');
      await new Promise((r) => server.child.once('exit', r));
      rmSync(server.dir, { recursive: true, force: true });
    }
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const medians = Object.fromEntries(
  Object.entries(runs).map(([semi, cases]) => [
    semi === '0' ? 'default' : semi === 'compare' ? 'compare' : `max_semi_space_size_${semi}`,
    Object.fromEntries(Object.entries(cases).map(([name, list]) => [name, { rps: median(list.map((f) => f.rps)), cpu_us_per_req: median(list.map((f) => f.cpu_us_per_req)), rss_mb: median(list.map((f) => f.rss_mb)) }])),
  ]),
);
const result = { medians, runs, rounds: ROUNDS, duration_s: DURATION, connections: 20, load_before: loadBefore, load_after: load(), ...commitOf(ROOT), ...(COMPARE ? { compare: { checkout: COMPARE, ...commitOf(COMPARE) } } : {}) };
console.log(JSON.stringify(medians, null, 2));
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
writeFileSync(join(ROOT, `bench/results/young-generation-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), JSON.stringify(result, null, 2));
