/**
 * Idle long-poll benchmark: `npx tsx bench/sync-idle.ts [--polls 1000] [--users 100] [--idle 5]
 * [--postgres]`.
 *
 * Starts Myelin in a child process (fresh SQLite database, or a fresh Postgres database with
 * --postgres), gives it `users` accounts with polls/users devices each, opens one /sync long-poll
 * (timeout 120 s) per device at once, and once they are all waiting measures the server process:
 * resident memory, and CPU time used over `idle` seconds while nothing happens. Then it changes one
 * user's account data and times how fast that user's syncs return. Prints the figures and whether
 * they are within the targets: under 200 MB RSS, and next to no CPU while idle.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freshDatabase } from '../test/helpers/server.js';
import { startChild } from './children.js';

const RSS_LIMIT_MB = 200;
/** "Next to no CPU": under 1% of one core while idle. */
const CPU_LIMIT_PERCENT = 1;

interface Stats {
  rss: number;
  cpu: NodeJS.CpuUsage;
  waiting: number;
}

type ToChild = { seed: { users: number; devices: number } } | { stats: true };

if (process.env.SYNC_IDLE_CHILD === '1') await child();
else await parent();

async function child(): Promise<void> {
  const { parseConfig } = await import('../src/config/load.js');
  const { startHomeserver } = await import('../src/homeserver.js');
  const { config } = parseConfig(JSON.parse(process.env.SYNC_IDLE_CONFIG!) as Record<string, unknown>);
  const hs = await startHomeserver(config);
  process.send!({ ready: true, url: hs.urls[0] });
  process.on('SIGTERM', () => void hs.close().then(() => process.exit(0)));
  process.on('message', (message: ToChild) => {
    void (async () => {
      if ('seed' in message) {
        const tokens: { userId: string; token: string }[] = [];
        for (let u = 0; u < message.seed.users; u++) {
          const { user_id } = await hs.services.accounts.register({ localpart: `idle${u}`, guest: false, inhibitLogin: true, refresh: false, ip: '127.0.0.1' });
          for (let d = 0; d < message.seed.devices; d++) {
            const session = await hs.services.devices.signIn({ userId: user_id, refresh: false, ip: '127.0.0.1' });
            tokens.push({ userId: user_id, token: session.access_token });
          }
        }
        process.send!({ tokens });
      } else if ('stats' in message) {
        process.send!({ stats: { rss: process.memoryUsage().rss, cpu: process.cpuUsage(), waiting: hs.services.notifier.waiting } satisfies Stats });
      }
    })().catch((err: unknown) => process.send!({ error: String(err) }));
  });
}

async function parent(): Promise<void> {
  const { values } = parseArgs({
    options: {
      polls: { type: 'string', default: '1000' },
      users: { type: 'string', default: '100' },
      idle: { type: 'string', default: '5' },
      postgres: { type: 'boolean', default: false },
    },
  });
  const polls = Number(values.polls);
  const users = Number(values.users);
  const idleSeconds = Number(values.idle);
  const devices = Math.ceil(polls / users);

  const dir = mkdtempSync(join(tmpdir(), 'myelin-sync-idle-'));
  const fresh = values.postgres ? await freshDatabase('postgres') : undefined;
  const database = fresh?.database ?? { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } };
  const config = {
    server_name: 'bench.local',
    listeners: [{ port: 0, bind_addresses: ['127.0.0.1'] }],
    database,
    log_level: 'warn',
    enable_registration: false,
  };

  const server = await startChild('sync-idle.ts', { SYNC_IDLE_CHILD: '1', SYNC_IDLE_CONFIG: JSON.stringify(config) }, join(dir, 'server.log'));
  const ask = async <T>(message: ToChild, key: string): Promise<T> => (await server.request(message, key, 600_000))[key] as T;
  const url = server.url;
  const { port } = new URL(url);

  const agent = new http.Agent({ keepAlive: true, maxSockets: polls + 10 });
  const get = (path: string, token: string) =>
    new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path, agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
      });
      req.on('error', reject);
      req.end();
    });

  try {
    const tokens = (await ask<{ userId: string; token: string }[]>({ seed: { users, devices } }, 'tokens')).slice(0, polls);
    const sinces: string[] = [];
    for (let i = 0; i < tokens.length; i += 50) {
      const batch = await Promise.all(tokens.slice(i, i + 50).map((t) => get('/_matrix/client/v3/sync', t.token)));
      for (const res of batch) sinces.push(res.body.next_batch as string);
    }
    const before = await ask<Stats>({ stats: true }, 'stats');

    const returned = new Map<number, number>();
    const pending = tokens.map((t, i) =>
      get(`/_matrix/client/v3/sync?timeout=120000&since=${sinces[i]}`, t.token).then((res) => {
        returned.set(i, Date.now());
        return res;
      }),
    );
    let stats = await ask<Stats>({ stats: true }, 'stats');
    const waitStart = Date.now();
    while (stats.waiting < tokens.length && Date.now() - waitStart < 60_000) {
      await new Promise((r) => setTimeout(r, 200));
      stats = await ask<Stats>({ stats: true }, 'stats');
    }
    if (stats.waiting < tokens.length) throw new Error(`only ${stats.waiting} of ${tokens.length} syncs are waiting`);
    // Let the set-up settle (GC, lazy compilation), then measure an idle stretch.
    await new Promise((r) => setTimeout(r, 1000));
    const idleStart = await ask<Stats>({ stats: true }, 'stats');
    const t0 = process.hrtime.bigint();
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const idleEnd = await ask<Stats>({ stats: true }, 'stats');
    const elapsedUs = Number(process.hrtime.bigint() - t0) / 1000;
    const cpuUs = idleEnd.cpu.user - idleStart.cpu.user + (idleEnd.cpu.system - idleStart.cpu.system);
    const cpuPercent = (100 * cpuUs) / elapsedUs;
    const rssMb = idleEnd.rss / 1024 / 1024;
    if (returned.size > 0) throw new Error(`${returned.size} syncs returned while idle`);

    // One change: that user's devices wake, the others keep waiting.
    const target = tokens[0]!;
    const changedAt = Date.now();
    await new Promise<void>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          method: 'PUT',
          agent,
          path: `/_matrix/client/v3/user/${encodeURIComponent(target.userId)}/account_data/org.example.bench`,
          headers: { authorization: `Bearer ${target.token}`, 'content-type': 'application/json' },
        },
        (res) => res.resume().on('end', () => resolve()),
      );
      req.on('error', reject);
      req.end('{"n":1}');
    });
    const own = tokens.map((t, i) => (t.userId === target.userId ? i : -1)).filter((i) => i >= 0);
    await Promise.all(own.map((i) => pending[i]));
    const wakeMs = Math.max(...own.map((i) => returned.get(i)! - changedAt));
    await new Promise((r) => setTimeout(r, 200));
    const woken = returned.size;

    console.log(`idle long-polls:          ${tokens.length} (${users} users x ${devices} devices, ${values.postgres ? 'postgres' : 'sqlite'})`);
    console.log(`server RSS before polls:  ${(before.rss / 1024 / 1024).toFixed(1)} MB`);
    console.log(`server RSS while waiting: ${rssMb.toFixed(1)} MB (limit ${RSS_LIMIT_MB} MB)`);
    console.log(`server CPU while idle:    ${(cpuUs / 1000).toFixed(1)} ms over ${(elapsedUs / 1e6).toFixed(1)} s = ${cpuPercent.toFixed(2)}% of one core (limit ${CPU_LIMIT_PERCENT}%)`);
    console.log(`wake-up after a change:   ${wakeMs} ms for ${own.length} devices; syncs returned: ${woken} (expected ${own.length})`);
    const ok = rssMb < RSS_LIMIT_MB && cpuPercent < CPU_LIMIT_PERCENT && woken === own.length;
    console.log(ok ? 'PASS' : 'FAIL');
    process.exitCode = ok ? 0 : 1;
  } finally {
    await server.stop();
    agent.destroy();
    rmSync(dir, { recursive: true, force: true });
    await fresh?.drop();
  }
}
