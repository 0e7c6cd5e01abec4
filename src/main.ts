import { existsSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config/load.js';
import { generateConfig } from './config/generate.js';
import { SHUTDOWN_GRACE_MS, createLogger, startHomeserver } from './homeserver.js';
import { systemClock } from './clock.js';
import { returnYoungGenerationAfterStartUp, returnYoungGenerationWhenQuiet } from './idle-heap.js';
import { createServices } from './services/index.js';
import { openDb } from './storage/db.js';
import type { Store } from './storage/index.js';

const USAGE = `Usage: myelin <command> [options]

Commands:
  start [--config FILE]                 Run the homeserver (embedded defaults without --config)
  generate-config --server-name NAME [--output FILE] [--postgres]
                                        Write a commented config with fresh secrets
  register-user --user NAME --password PW [--admin] [--config FILE]
                                        Create an account directly in the database
                                        (--admin: a server admin, who may use the admin API)`;

async function start(configPath: string | undefined): Promise<void> {
  const { config, warnings } = loadConfig(configPath);
  const logger = createLogger(config);
  for (const warning of warnings) logger.warn(warning);
  const hs = await startHomeserver(config, { logger });
  // Blocks for a moment (~0.1 s): a request that came meanwhile waits for it.
  returnYoungGenerationAfterStartUp();
  logger.info({ urls: hs.urls, server_name: config.server_name, database: config.database.name }, 'Myelin is listening');
  const stopHeapWatch = returnYoungGenerationWhenQuiet();
  // The log is written asynchronously: let what is buffered reach it, in order, before exiting.
  const exit = (code: number) => {
    process.exitCode = code;
    setTimeout(() => process.exit(code), 1000).unref();
    logger.flush(() => process.exit(code));
  };
  let stopping = false;
  // Graceful shutdown (systemd and docker stop send SIGTERM, a terminal SIGINT): stop accepting,
  // answer waiting long-polls, finish requests in flight, let the outbox record its sends, close
  // the database, exit 0. A second signal, or a shutdown that hangs, ends the process at once.
  const stop = async (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal during shutdown: exiting now');
      exit(1);
      return;
    }
    stopping = true;
    stopHeapWatch();
    logger.info({ signal }, 'shutting down');
    const started = Date.now();
    setTimeout(() => {
      logger.error('shutdown did not finish in time: exiting');
      exit(1);
    }, SHUTDOWN_GRACE_MS + 10_000).unref();
    try {
      await hs.close();
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'shutdown failed');
      exit(1);
      return;
    }
    logger.info({ ms: Date.now() - started }, 'shut down');
    exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

async function registerUser(configPath: string | undefined, user: string, password: string, admin: boolean): Promise<void> {
  const { config } = loadConfig(configPath);
  const db = await openDb(config.database);
  let services: ReturnType<typeof createServices> | undefined;
  try {
    services = createServices(config, db, systemClock);
    const localpart = services.accounts.validateLocalpart(user);
    const result = await services.accounts.register({
      localpart,
      password,
      guest: false,
      inhibitLogin: true,
      refresh: false,
      ip: '127.0.0.1',
      ...(admin ? { onCreated: (work: Store, userId: string) => work.adminUsers.setAdmin(userId, true) } : {}),
    });
    console.log(`Created ${result.user_id}${admin ? ' (server admin)' : ''}`);
  } finally {
    // Background parts (e.g. a database listener) would keep the process alive.
    for (const stop of services?.stoppers ?? []) await stop();
    await db.close();
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      config: { type: 'string', short: 'c' },
      'server-name': { type: 'string' },
      output: { type: 'string', short: 'o' },
      postgres: { type: 'boolean' },
      user: { type: 'string', short: 'u' },
      password: { type: 'string', short: 'p' },
      force: { type: 'boolean' },
      admin: { type: 'boolean' },
    },
  });
  switch (command) {
    case 'start':
      return start(values.config);
    case 'generate-config': {
      if (!values['server-name']) throw new ConfigError('generate-config needs --server-name');
      const text = generateConfig(values['server-name'], { postgres: values.postgres });
      if (!values.output) return void process.stdout.write(text);
      if (existsSync(values.output) && !values.force) throw new ConfigError(`${values.output} exists; pass --force to overwrite it`);
      writeFileSync(values.output, text, { mode: 0o600 });
      console.log(`Wrote ${values.output}`);
      return;
    }
    case 'register-user':
      if (!values.user || !values.password) throw new ConfigError('register-user needs --user and --password');
      return registerUser(values.config, values.user, values.password, values.admin === true);
    default:
      console.log(USAGE);
      process.exitCode = command === undefined || command === 'help' || command === '--help' ? 0 : 2;
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(`myelin: ${err.message}`);
  else if (err instanceof Error && 'errcode' in err) console.error(`myelin: ${err.message}`);
  else console.error(err);
  process.exit(1);
});
