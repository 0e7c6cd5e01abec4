import { after, before } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { Clock } from '../../src/clock.js';
import type { Config } from '../../src/config/index.js';
import { parseConfig } from '../../src/config/load.js';
import { startHomeserver, type Homeserver } from '../../src/homeserver.js';
import type { RequestTimeouts } from '../../src/http/request-timeouts.js';
import { Api, freshConnections } from './api.js';

export type Engine = 'sqlite' | 'postgres';
/**
 * Storage suites, and HTTP suites where the engine can matter (engine-specific SQL, concurrency,
 * several processes on one database, transactions, migrations), run on both engines.
 */
export const ENGINES: readonly Engine[] = ['sqlite', 'postgres'];
/**
 * HTTP suites whose assertions cannot depend on the engine run on SQLite only;
 * MYELIN_TEST_ALL_ENGINES=1 runs them on both as well.
 */
export const HTTP_ENGINES: readonly Engine[] = process.env.MYELIN_TEST_ALL_ENGINES === '1' ? ENGINES : ['sqlite'];

export const PG = { host: '127.0.0.1', port: 5432, user: 'postgres' };

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Where the test servers on one PostgreSQL database keep their signing key (the same for all of them). */
function pgSigningKeyPath(database: Record<string, unknown>): string {
  return join(tmpdir(), `${String((database.args as { database?: unknown } | undefined)?.database)}.signing.key`);
}

/** Where the test servers on one PostgreSQL database keep their media files. */
function pgMediaStorePath(database: Record<string, unknown>): string {
  return join(tmpdir(), `${String((database.args as { database?: unknown } | undefined)?.database)}.media`);
}

/** A fresh, empty database for one test server; `drop` removes it. */
export async function freshDatabase(engine: Engine): Promise<{ database: Record<string, unknown>; drop(): Promise<void> }> {
  if (engine === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'myelin-test-'));
    return { database: { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } }, drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const name = `myelin_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  const admin = new pg.Client({ ...PG, database: 'postgres' });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return {
    database: { name: 'psycopg2', args: { ...PG, database: name } },
    drop: async () => {
      const c = new pg.Client({ ...PG, database: 'postgres' });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
      rmSync(pgSigningKeyPath({ args: { database: name } }), { force: true });
      rmSync(pgMediaStorePath({ args: { database: name } }), { recursive: true, force: true });
    },
  };
}

/** Config for tests: cheap password hashing, generous rate limits, open registration. */
export function testConfig(port: number, database: Record<string, unknown>, overrides: Record<string, unknown> = {}, listener: Record<string, unknown> = {}): Config {
  return parseConfig(rawTestConfig(port, database, overrides, listener)).config;
}

/** testConfig before parsing, as a config file would hold it (for a server in another process). */
export function rawTestConfig(port: number, database: Record<string, unknown>, overrides: Record<string, unknown> = {}, listener: Record<string, unknown> = {}): Record<string, unknown> {
  const generous = { per_second: 1000, burst_count: 1000 };
  return {
    server_name: 'test.local',
    public_baseurl: `http://127.0.0.1:${port}/`,
    listeners: [{ port, bind_addresses: ['127.0.0.1'], ...listener }],
    database,
    log_level: process.env.MYELIN_TEST_LOG ?? 'silent',
    enable_registration: true,
    enable_registration_without_verification: true,
    password_config: { argon2: { memory_cost: 1024, time_cost: 1, parallelism: 1 } },
    rc_login: { address: generous, account: generous, failed_attempts: generous },
    rc_registration: generous,
    rc_registration_availability: generous,
    rc_message: generous,
    // PostgreSQL needs it to encrypt queued mail; SQLite tests use the key file made next to the database.
    // The signing key would default to ./data/ with PostgreSQL: kept in the temp directory instead.
    // Media would default to ./data/media_store with PostgreSQL too: also kept in the temp directory.
    ...(database.name === 'psycopg2' ? { macaroon_secret_key: 'test-outbox-secret', signing_key_path: pgSigningKeyPath(database), media_store_path: pgMediaStorePath(database) } : {}),
    ...overrides,
  };
}

export interface TestServer {
  engine: Engine;
  url: string;
  api: Api;
  config: Config;
  hs: Homeserver;
  /** Stops the homeserver and starts a new one on the same database and port. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export interface TestServerOptions {
  clock?: Clock;
  /** Times the outbox (due messages, retry waits), apart from `clock`. */
  outboxClock?: Clock;
  /** Start a second process-like homeserver on an existing database instead of a fresh one. */
  database?: Record<string, unknown>;
  /** Extra keys for the one listener (e.g. x_forwarded). */
  listener?: Record<string, unknown>;
  /** Shorter limits on how long clients may take to send requests. */
  timeouts?: RequestTimeouts;
}

/** Starts a homeserver on a fresh database of the given engine, listening on a free loopback port. */
export async function startTestServer(engine: Engine, overrides: Record<string, unknown> = {}, options: TestServerOptions = {}): Promise<TestServer> {
  const fresh = options.database ? { database: options.database, drop: async () => undefined } : await freshDatabase(engine);
  const port = await freePort();
  const config = testConfig(port, fresh.database, overrides, options.listener);
  const start = { clock: options.clock, outboxClock: options.outboxClock, timeouts: options.timeouts };
  let hs = await startHomeserver(config, start);
  const url = `http://127.0.0.1:${port}`;
  const server: TestServer = {
    engine,
    url,
    api: new Api(url),
    config,
    hs,
    async restart() {
      await hs.close();
      hs = await startHomeserver(config, start);
      server.hs = hs;
      freshConnections();
    },
    async close() {
      await hs.close();
      await fresh.drop();
    },
  };
  return server;
}

/** A clock a test can move forward. */
export class ManualClock implements Clock {
  constructor(private current = Date.now()) {}
  now(): number {
    return this.current;
  }
  advance(ms: number): void {
    this.current += ms;
  }
}

/**
 * Two homeserver processes on one fresh PostgreSQL database, started before the enclosing suite's
 * tests and closed after them: each has its own pool, notifier and LISTEN connection.
 */
export function twoProcessesOnePostgres(): { first: TestServer; second: TestServer } {
  const pair = {} as { first: TestServer; second: TestServer };
  before(async () => {
    pair.first = await startTestServer('postgres');
    pair.second = await startTestServer('postgres', {}, { database: pair.first.config.database as unknown as Record<string, unknown> });
  });
  after(async () => {
    await pair.second?.close();
    await pair.first?.close();
  });
  return pair;
}
