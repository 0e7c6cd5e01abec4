import { pathToFileURL } from 'node:url';
import { watchLoopDelay } from './loop-delay.js';

const loop = watchLoopDelay();

/**
 * Myelin under benchmark, in its own process so the load generator does not share its event loop.
 * The raw config comes as JSON in BENCH_MYELIN_CONFIG; BENCH_MYELIN_SRC names another copy of
 * src/ to run instead (before/after comparisons: run.ts --compare). Over IPC it reports {ready, url},
 * answers {seed: [{localpart, password, email?}]} by creating those accounts (email bound and
 * validated), so the benchmark starts from a populated database without timing the set-up,
 * answers {cpu: true} with the CPU time the process has used so far, and {routes: true} with every
 * route the server registered (bench/fuzz.ts walks them).
 */
interface SeedUser {
  localpart: string;
  password: string;
  email?: string;
}

const src = process.env.BENCH_MYELIN_SRC ?? new URL('../src', import.meta.url).pathname;
const { parseConfig } = (await import(pathToFileURL(`${src}/config/load.ts`).href)) as typeof import('../src/config/load.js');
const { startHomeserver } = (await import(pathToFileURL(`${src}/homeserver.ts`).href)) as typeof import('../src/homeserver.js');
const { routesOf } = (await import(pathToFileURL(`${src}/http/router.ts`).href)) as typeof import('../src/http/router.js');

const raw = JSON.parse(process.env.BENCH_MYELIN_CONFIG ?? '{}') as Record<string, unknown>;
const { config, warnings } = parseConfig(raw);
if (warnings.length > 0) console.error(warnings.join('\n'));
const hs = await startHomeserver(config);

async function seed(users: SeedUser[]): Promise<void> {
  const now = Date.now();
  // A few at a time: argon2 runs on the thread pool, and the machine has few cores.
  for (let i = 0; i < users.length; i += 4) {
    await Promise.all(
      users.slice(i, i + 4).map((u) =>
        hs.services.accounts.register({
          localpart: u.localpart,
          password: u.password,
          guest: false,
          inhibitLogin: true,
          refresh: false,
          ip: '127.0.0.1',
          threepids: u.email ? [{ medium: 'email', address: u.email, validated_ts: now }] : [],
        }),
      ),
    );
  }
}

process.on('message', (message: { seed?: SeedUser[]; cpu?: boolean; routes?: boolean }) => {
  if (message.cpu) process.send?.({ cpu: process.cpuUsage(), loop: loop.take() });
  if (message.routes) process.send?.({ routes: routesOf(hs.apps[0]!) });
  if (!message.seed) return;
  seed(message.seed).then(
    () => process.send?.({ seeded: message.seed!.length }),
    (err: unknown) => process.send?.({ error: String(err) }),
  );
});

let closing = false;
const stop = () => {
  if (closing) return;
  closing = true;
  hs.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', stop);
process.on('disconnect', stop);

process.send?.({ ready: true, url: hs.urls[0] });
