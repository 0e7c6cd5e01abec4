import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { startChild } from '../../bench/children.js';
import { Api } from './api.js';
import { freePort, freshDatabase, rawTestConfig, type Engine } from './server.js';

/**
 * A seeded fuzzer for a running Myelin: malformed requests over every route it registered, while a
 * worker thread (its own event loop, so the fuzzer's work does not delay it) times GET /versions
 * every 50 ms. Used by bench/fuzz.ts and test/fuzz.test.ts.
 */

export interface Route {
  method: string;
  path: string;
  auth: 'none' | 'required' | 'optional';
}

export interface FuzzRequest {
  method: string;
  /** Sent as is: may hold '..', percent-encoded junk, invalid escapes. */
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

export interface Answer {
  status: number;
  body: string;
}

export interface FuzzReport {
  sent: number;
  counts: Record<string, number>;
  /** Every answer of 5xx (or no answer: status 0) with the request that caused it. */
  failures: { request: FuzzRequest; answer: Answer }[];
  maxVersionsMs: number;
  versionsPolls: number;
  elapsedMs: number;
}

export interface FuzzOptions {
  url: string;
  routes: readonly Route[];
  /** A logged-in user's token, and how to get a fresh one if a request logs it out. */
  token: string;
  relogin: () => Promise<string>;
  userId: string;
  requests: number;
  seed: number;
  concurrency?: number;
  /** Stop sending after this long, whatever the count. */
  maxMs?: number;
  /** Requests sent first, in order (known troublemakers), before the random ones. */
  fixed?: readonly FuzzRequest[];
}

/** encodeURIComponent that also takes lone surrogates (as U+FFFD, the bytes a UTF-8 encoder sends). */
function percent(value: string): string {
  return [...Buffer.from(value, 'utf8')].map((b) => (/[A-Za-z0-9\-_.~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

/** mulberry32: small, fast, and the same sequence for the same seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Field names used across the client-server API's request bodies and query strings. */
const FIELDS = [
  'username', 'password', 'auth', 'type', 'session', 'identifier', 'user', 'medium', 'address', 'country', 'phone',
  'device_id', 'initial_device_display_name', 'inhibit_login', 'refresh_token', 'token', 'refresh', 'client_secret', 'sid',
  'email', 'send_attempt', 'next_link', 'phone_number', 'id_server', 'id_access_token', 'threepid_creds', 'threepid',
  'new_password', 'logout_devices', 'erase', 'bind', 'displayname', 'avatar_url', 'devices', 'display_name', 'presence',
  'status_msg', 'actions', 'conditions', 'pattern', 'enabled', 'kind', 'rule_id', 'rooms', 'sessions', 'algorithm',
  'auth_data', 'version', 'etag', 'count', 'first_message_index', 'forwarded_count', 'is_verified', 'session_data',
  'device_keys', 'one_time_keys', 'fallback_keys', 'master_key', 'self_signing_key', 'user_signing_key', 'signatures',
  'keys', 'usage', 'user_id', 'algorithms', 'messages', 'account_data', 'room', 'event_fields', 'event_format', 'limit',
  'types', 'not_types', 'senders', 'not_senders', 'timeline', 'state', 'ephemeral', 'include_leave', 'nonce', 'mac',
  'admin', 'user_type', 'id', 'from', 'to', 'filter', 'since', 'timeout', 'full_state', 'set_presence', 'before', 'after',
  'access_token', 'reason', 'submit_url', 'msisdn', 'expires_in_ms', '__proto__', 'constructor', 'toString',
];

const QUERY_KEYS = ['version', 'from', 'to', 'filter', 'since', 'timeout', 'full_state', 'set_presence', 'before', 'after', 'access_token', 'access%5ftoken', 'kind', 'sid', 'client_secret', 'token', 'user_id', 'limit', 'server', 'medium'];

export class Generator {
  private readonly random: () => number;

  constructor(
    seed: number,
    private readonly routes: readonly Route[],
    private readonly userId: string,
  ) {
    this.random = rng(seed);
  }

  private int(n: number): number {
    return Math.floor(this.random() * n);
  }

  private pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  private chance(p: number): boolean {
    return this.random() < p;
  }

  /** A string a client should not send, or sends rarely. */
  private oddString(): string {
    const options = [
      () => '',
      () => '\u0000',
      () => `a\u0000b`,
      () => 'x'.repeat(1 + this.int(100)),
      () => 'y'.repeat(70_000),
      () => '\ud800',
      () => '😀'.repeat(1 + this.int(300)),
      () => '*'.repeat(1 + this.int(40)) + 'x',
      () => '../../etc/passwd',
      () => '%00%ff',
      () => '__proto__',
      () => 'constructor',
      () => '@a:b',
      () => this.userId,
      () => '!room:test.local',
      () => 'm.login.password',
      () => 'm.login.dummy',
      () => 'm.id.user',
      () => 'email',
      () => 'msisdn',
      () => '+4915112345678',
      () => 'a@example.org',
      () => 'http://127.0.0.1:1/x',
      () => '1',
      () => '-1',
      () => '9'.repeat(40),
      () => 'true',
      () => '{"a":',
      () => '<script>alert(1)</script>',
    ];
    return this.pick(options)();
  }

  private deep(depth: number, inObject: boolean): string {
    return inObject ? '{"a":'.repeat(depth) + '1' + '}'.repeat(depth) : '['.repeat(depth) + ']'.repeat(depth);
  }

  /** A JSON value of some type, often the wrong one; depth keeps it finite. */
  private value(depth = 0): unknown {
    const kind = this.int(depth > 2 ? 7 : 10);
    switch (kind) {
      case 0:
        return null;
      case 1:
        return this.chance(0.5);
      case 2:
        return this.pick([0, -1, 1.5, 2 ** 53, -(2 ** 63), 1e308, 42]);
      case 3:
      case 4:
      case 5:
      case 6:
        return this.oddString();
      case 7:
        return Array.from({ length: this.int(4) }, () => this.value(depth + 1));
      default:
        return this.object(depth + 1);
    }
  }

  private object(depth = 0): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (let i = this.int(5); i >= 0; i--) out[this.pick(FIELDS)] = this.value(depth);
    return out;
  }

  private body(): { body?: Buffer; contentType?: string } {
    const json = (value: unknown) => ({ body: Buffer.from(JSON.stringify(value)), contentType: 'application/json' });
    switch (this.int(12)) {
      case 0:
        return {};
      case 1:
        return { body: Buffer.from(this.pick(['{', '{"a":1,}', 'nul', '"\\ud800"', '{"a":"\\u0000"}', '[1,2', '  '])), contentType: 'application/json' };
      case 2:
        // Invalid UTF-8 inside a JSON string.
        return { body: Buffer.concat([Buffer.from('{"username":"'), Buffer.from([0xc3, 0x28, 0xff, 0xfe]), Buffer.from('"}')]), contentType: 'application/json' };
      case 3:
        return { body: Buffer.from(this.deep(500 + this.int(20_000), this.chance(0.5))), contentType: 'application/json' };
      case 4:
        return json(this.pick([[], 1, 'str', null, true, [{}]]));
      case 5:
        return { body: Buffer.from('username=a&password=b'), contentType: 'application/x-www-form-urlencoded' };
      case 6:
        return { body: Buffer.from(`{"auth":${this.deep(100 + this.int(5000), true)}}`), contentType: this.pick(['application/json', 'text/plain']) };
      default:
        return json(this.object());
    }
  }

  private param(): string {
    const options = [
      () => percent(this.userId),
      () => percent('!room:test.local'),
      () => 'm.test',
      () => '1',
      () => 'override',
      () => 'content',
      () => 'enabled',
      () => 'actions',
      () => '.m.rule.master',
      () => '..',
      () => '%2e%2e',
      () => '%2F',
      () => '%00',
      () => '%ff%fe',
      () => '%E0%80%80',
      () => '%zz',
      () => '%',
      () => percent('😀'),
      () => 'a'.repeat(101 + this.int(3000)),
      () => '__proto__',
      () => 'constructor',
      () => percent(this.oddString()),
    ];
    return this.pick(options)();
  }

  private query(): string {
    if (this.chance(0.5)) return '';
    const parts: string[] = [];
    for (let i = this.int(4); i >= 0; i--) {
      const key = this.pick(QUERY_KEYS);
      const value = this.pick([() => percent(this.oddString()), () => '%zz', () => '', () => `${percent(JSON.stringify(this.object()))}`, () => '1', () => 'true']);
      parts.push(`${key}=${value()}`);
      if (this.chance(0.1)) parts.push(`${key}=again`);
    }
    return `?${parts.join('&')}`;
  }

  next(token: string): FuzzRequest {
    const route = this.pick(this.routes);
    const path = route.path.replace(/:[A-Za-z_]+/g, () => this.param()) + this.query();
    const method = this.chance(0.85) ? route.method : this.pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS']);
    const headers: Record<string, string> = {};
    const auth = this.random();
    if (auth < 0.6) headers.authorization = `Bearer ${token}`;
    else if (auth < 0.7) headers.authorization = 'Bearer not-a-token';
    else if (auth < 0.75) headers.authorization = this.pick(['Bearer', 'Basic abc', `Bearer ${token} extra`, 'bearer  ']);
    // An oversized HEAD request gets a 431 whose body the client then reads as a broken next answer.
    if (method === 'HEAD' && path.length > 8000) return this.next(token);
    const { body, contentType } = method === 'GET' || method === 'HEAD' ? (this.chance(0.1) ? this.body() : {}) : this.body();
    if (contentType) headers['content-type'] = contentType;
    return { method, path, headers, body };
  }
}

function send(url: URL, agent: Agent, req: FuzzRequest, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve) => {
    const headers: Record<string, string | number> = { ...req.headers };
    if (req.body) headers['content-length'] = req.body.length;
    let done = false;
    const finish = (answer: Answer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(answer);
    };
    const timer = setTimeout(() => {
      finish({ status: 0, body: `no answer within ${timeoutMs} ms` });
      outgoing.destroy();
    }, timeoutMs);
    let outgoing: ReturnType<typeof httpRequest>;
    try {
      outgoing = httpRequest({ host: url.hostname, port: url.port, method: req.method, path: req.path, headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => finish({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8').slice(0, 500) }));
        res.on('error', (err) => finish({ status: 0, body: `response error: ${err.message}` }));
      });
    } catch (err) {
      // Node refuses to send some paths (e.g. with spaces); nothing reached the server.
      clearTimeout(timer);
      resolve({ status: -1, body: `not sent: ${(err as Error).message}` });
      return;
    }
    outgoing.on('error', (err) => finish({ status: 0, body: `request error: ${err.message}` }));
    outgoing.end(req.body);
  });
}

/** Worker code: polls /versions every 50 ms with its own event loop; reports the slowest answer. */
const POLLER = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const { performance } = require('node:perf_hooks');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let max = 0, polls = 0, stopped = false, inFlight = null;
function poll() {
  const started = performance.now();
  inFlight = started;
  const req = http.get(workerData.url + '/_matrix/client/versions', { agent }, (res) => {
    res.resume();
    res.on('end', () => {
      const ms = performance.now() - started;
      if (res.statusCode !== 200) parentPort.postMessage({ error: 'versions answered ' + res.statusCode });
      max = Math.max(max, ms); polls++; inFlight = null;
      if (!stopped) setTimeout(poll, 50);
    });
  });
  req.on('error', (err) => { parentPort.postMessage({ error: String(err) }); inFlight = null; if (!stopped) setTimeout(poll, 50); });
}
poll();
parentPort.on('message', () => {
  stopped = true;
  const pending = inFlight === null ? 0 : performance.now() - inFlight;
  parentPort.postMessage({ max: Math.max(max, pending), polls });
});
`;

/** Starts the /versions poller; `stop` resolves with the slowest answer seen (or still awaited). */
export function pollVersions(url: string): { stop(): Promise<{ maxMs: number; polls: number; errors: string[] }> } {
  const worker = new Worker(POLLER, { eval: true, workerData: { url } });
  const errors: string[] = [];
  worker.on('message', (m: { error?: string }) => {
    if (m.error) errors.push(m.error);
  });
  return {
    stop: () =>
      new Promise((resolve, reject) => {
        worker.on('message', (m: { max?: number; polls?: number }) => {
          if (m.max === undefined) return;
          void worker.terminate();
          resolve({ maxMs: m.max, polls: m.polls ?? 0, errors });
        });
        worker.once('error', reject);
        worker.postMessage('stop');
      }),
  };
}

const isLogout = (req: FuzzRequest) => /\/logout(\/all)?(\?|$)/.test(req.path) && req.method === 'POST';

/** Sends the fixed requests, then seeded random ones, `concurrency` at a time; reports every answer of 5xx. */
export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const url = new URL(options.url);
  // No keep-alive: the server closes a connection after some refusals (431, framework errors), and a
  // request racing that close on a reused socket would read as a reset.
  const agent = new Agent({ keepAlive: false });
  const generator = new Generator(options.seed, options.routes, options.userId);
  const deadline = performance.now() + (options.maxMs ?? 600_000);
  const counts: Record<string, number> = {};
  const failures: FuzzReport['failures'] = [];
  const fixed = [...(options.fixed ?? [])];
  let token = options.token;
  let sent = 0;
  let relogging: Promise<void> | undefined;
  const started = performance.now();
  const poller = pollVersions(options.url);

  const worker = async () => {
    while (sent < options.requests + (options.fixed?.length ?? 0) && performance.now() < deadline) {
      if (relogging) await relogging;
      const req = fixed.shift() ?? generator.next(token);
      sent++;
      const answer = await send(url, agent, req, 15_000);
      counts[answer.status] = (counts[answer.status] ?? 0) + 1;
      if (answer.status >= 500 || answer.status === 0) failures.push({ request: req, answer });
      // A logout that worked would leave the rest unauthenticated: log in again.
      if (answer.status === 200 && isLogout(req) && req.headers.authorization === `Bearer ${token}` && !relogging) {
        relogging = options.relogin().then((fresh) => {
          token = fresh;
          relogging = undefined;
        });
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency ?? 8 }, worker));
  } finally {
    agent.destroy();
  }
  const versions = await poller.stop();
  for (const error of versions.errors) failures.push({ request: { method: 'GET', path: '/_matrix/client/versions', headers: {} }, answer: { status: 0, body: error } });
  return { sent, counts, failures, maxVersionsMs: versions.maxMs, versionsPolls: versions.polls, elapsedMs: performance.now() - started };
}

/** One line per request, short enough to read: method, path, headers, body (truncated). */
export function describeRequest(req: FuzzRequest): string {
  const cut = (s: string) => (s.length > 300 ? `${s.slice(0, 300)}... (${s.length} chars)` : s);
  const body = req.body ? ` body=${cut(JSON.stringify(req.body.toString('latin1')))}` : '';
  return `${req.method} ${cut(req.path)} headers=${JSON.stringify(req.headers)}${body}`;
}

/** Raw config for a fuzzed server: cheap password hashing, rate limits out of the way, loopback only. */
export function fuzzConfig(port: number, database: Record<string, unknown>): Record<string, unknown> {
  const generous = { per_second: 100_000, burst_count: 100_000 };
  return rawTestConfig(port, database, {
    log_level: process.env.FUZZ_LOG_LEVEL ?? 'error',
    rc_login: { address: generous, account: generous, failed_attempts: generous },
    rc_registration: generous,
    rc_registration_availability: generous,
    rc_3pid_validation: generous,
  });
}

export interface EngineRun {
  report: FuzzReport;
  routes: readonly Route[];
  logFile: string;
}

/**
 * Starts Myelin in a child process on a fresh database of `engine`, registers a user, and fuzzes
 * every route the server registered. The child and the database are gone when it returns.
 */
export async function fuzzEngine(
  engine: Engine,
  options: { requests: number; seed: number; maxMs?: number; concurrency?: number; fixed?: (token: string, userId: string) => FuzzRequest[] },
): Promise<EngineRun> {
  const fresh = await freshDatabase(engine);
  const dir = mkdtempSync(join(tmpdir(), 'myelin-fuzz-'));
  const logFile = join(dir, 'server.log');
  const port = await freePort();
  let report: FuzzReport | undefined;
  const server = await startChild('myelin-server.ts', { BENCH_MYELIN_CONFIG: JSON.stringify(fuzzConfig(port, fresh.database)) }, logFile);
  try {
    const routes = (await server.request({ routes: true }, 'routes')).routes as Route[];
    if (routes.length === 0) throw new Error('the server reported no routes');
    const api = new Api(server.url);
    const password = 'correct horse battery';
    const user = await api.register('fuzzer', password);
    const relogin = async () => (await api.login('fuzzer', password)).access_token;
    report = await runFuzz({
      url: server.url,
      routes,
      token: user.access_token,
      relogin,
      userId: user.user_id,
      requests: options.requests,
      seed: options.seed,
      maxMs: options.maxMs,
      concurrency: options.concurrency,
      fixed: options.fixed?.(user.access_token, user.user_id),
    });
    return { report, routes, logFile };
  } finally {
    const keepLog = report === undefined || report.failures.length > 0;
    await server.stop();
    await fresh.drop();
    // The server log is kept only when there is something to read in it.
    if (!keepLog) rmSync(dir, { recursive: true, force: true });
  }
}
