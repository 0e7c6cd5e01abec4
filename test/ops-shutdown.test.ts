import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SMTPServer } from 'smtp-server';
import { Api } from './helpers/api.js';
import { scrape } from './helpers/metrics.js';
import { startMyelinProcess, type MyelinProcess } from './helpers/process.js';
import { freePort, freshDatabase, rawTestConfig } from './helpers/server.js';
import { SmtpSink } from './helpers/smtp.js';
import { secret } from './helpers/threepid-email.js';
import { until } from './helpers/until.js';

const ROOT = join(import.meta.dirname, '..');
/** The homeserver from its sources, as `npm run dev` runs it. */
const FROM_SOURCE = ['--import', 'tsx', 'src/main.ts'];

/** An SMTP server that takes a mail's data and then answers after `delayMs` (never, when Infinity). */
async function slowSmtp(port: number, delayMs: number): Promise<{ dataStarted: Promise<void>; accepted: () => number; stop(): Promise<void> }> {
  let started!: () => void;
  const dataStarted = new Promise<void>((resolve) => (started = resolve));
  let accepted = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, _session, callback) {
      started();
      stream.resume();
      stream.on('end', () => {
        if (Number.isFinite(delayMs)) {
          setTimeout(() => {
            accepted++;
            callback();
          }, delayMs);
        }
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    dataStarted,
    accepted: () => accepted,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Sends a request's head and the start of its body now; `finish()` sends the rest and resolves with the raw answer. */
function startRequest(url: string, method: string, path: string, token: string, body: string): { finish(): Promise<string> } {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  let answer = '';
  const ended = new Promise<string>((resolve, reject) => {
    socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
  const half = Math.floor(body.length / 2);
  socket.write(`${method} ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, half)}`);
  return {
    finish() {
      socket.write(body.slice(half));
      return ended;
    },
  };
}

function outboxRows(databasePath: string): { sent_ts: number | null; payload: string | null; locked_until: number | null; attempts: number; next_attempt_ts: number | null }[] {
  const db = new Database(databasePath, { readonly: true });
  try {
    return db.prepare('SELECT sent_ts, payload, locked_until, attempts, next_attempt_ts FROM outbox').all() as ReturnType<typeof outboxRows>;
  } finally {
    db.close();
  }
}

describe('graceful shutdown of the real process (sqlite, from the sources)', () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  async function start(overrides: Record<string, unknown> = {}, database?: Record<string, unknown>): Promise<{ proc: MyelinProcess; databasePath: string; database: Record<string, unknown> }> {
    let db = database;
    if (!db) {
      const fresh = await freshDatabase('sqlite');
      cleanups.push(() => fresh.drop());
      db = fresh.database;
    }
    const databasePath = (db.args as { database: string }).database;
    const port = await freePort();
    const config = rawTestConfig(port, db, { log_level: 'info', ...overrides }, { resources: [{ names: ['client', 'metrics'] }] });
    const proc = await startMyelinProcess(dirname(databasePath), FROM_SOURCE, config, { cwd: ROOT });
    cleanups.push(async () => {
      if (proc.child.exitCode === null && proc.child.signalCode === null) proc.kill('SIGKILL');
      await proc.exited;
    });
    return { proc, databasePath, database: db };
  }

  it('on SIGTERM answers a waiting long-poll at once, stops accepting, finishes a request in flight, and exits 0', async () => {
    const { proc } = await start({ enable_metrics: true });
    const api = new Api(proc.url);
    const alice = await api.register('alice');
    const initial = await api.get<{ next_batch: string }>('/v3/sync', { token: alice.access_token });
    const longPoll = api.get<{ next_batch: string }>(`/v3/sync?since=${initial.body.next_batch}&timeout=30000`, { token: alice.access_token });
    await until(async () => (await scrape(`${proc.url}/_synapse/metrics`)).value('myelin_sync_longpolls_waiting') === 1, 'the long-poll to wait');
    // A request whose body is still arriving when the signal comes.
    const inFlight = startRequest(proc.url, 'POST', `/_matrix/client/v3/user/${encodeURIComponent(alice.user_id)}/filter`, alice.access_token, JSON.stringify({ room: { timeline: { limit: 5 } } }));
    await new Promise((resolve) => setTimeout(resolve, 200));

    const signalled = Date.now();
    proc.kill('SIGTERM');
    const polled = await longPoll;
    assert.equal(polled.status, 200);
    assert.ok(Date.now() - signalled < 2000, `the long-poll was answered ${Date.now() - signalled} ms after the signal`);
    // No new connections, while the request in flight is still being received.
    await until(async () => fetch(`${proc.url}/_matrix/client/versions`).then(() => false, () => true), 'new connections to be refused', 5_000);
    assert.equal(proc.child.exitCode, null, 'still running for the request in flight');

    // Answered in full; then the server closes the connection (finish() resolves at its end).
    const answer = await inFlight.finish();
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.match(answer, /"filter_id":"[^"]+"/);
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
    const logs = proc.logs();
    assert.ok(logs.some((l) => l.msg === 'shutting down' && l.signal === 'SIGTERM'));
    assert.ok(logs.some((l) => l.msg === 'shut down'));
    assert.equal(proc.stderr(), '');
  });

  it('on SIGINT lets a mail being sent finish and records it sent before exiting 0', async () => {
    const smtpPort = await freePort();
    const smtp = await slowSmtp(smtpPort, 1500);
    cleanups.push(() => smtp.stop());
    const { proc, databasePath } = await start({ email: { smtp_host: '127.0.0.1', smtp_port: smtpPort, notif_from: 'Test <noreply@test.local>', enable_tls: false }, rc_3pid_validation: { per_second: 1000, burst_count: 1000 } });
    const queued = await new Api(proc.url).post('/v3/register/email/requestToken', { client_secret: secret(), email: 'slow@example.org', send_attempt: 1 });
    assert.equal(queued.status, 200);
    await smtp.dataStarted;
    proc.kill('SIGINT');
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
    assert.equal(smtp.accepted(), 1);
    const rows = outboxRows(databasePath);
    assert.equal(rows.length, 1);
    assert.ok(rows[0]!.sent_ts !== null, 'marked sent');
    assert.equal(rows[0]!.payload, null, 'its content forgotten');
  });

  it('on SIGTERM with a mail server that never answers, releases the mail for a retry, and a restarted process sends it', async () => {
    const smtpPort = await freePort();
    const hung = await slowSmtp(smtpPort, Infinity);
    const email = { smtp_host: '127.0.0.1', smtp_port: smtpPort, notif_from: 'Test <noreply@test.local>', enable_tls: false };
    const overrides = { email, rc_3pid_validation: { per_second: 1000, burst_count: 1000 }, outbox: { max_retry_interval: '1s', poll_interval: '1s' } };
    const first = await start(overrides);
    const queued = await new Api(first.proc.url).post('/v3/register/email/requestToken', { client_secret: secret(), email: 'later@example.org', send_attempt: 1 });
    assert.equal(queued.status, 200);
    await hung.dataStarted;
    const signalled = Date.now();
    first.proc.kill('SIGTERM');
    assert.deepEqual(await first.proc.exited, { code: 0, signal: null });
    assert.ok(Date.now() - signalled < 15_000, `exited ${Date.now() - signalled} ms after the signal`);
    const [row] = outboxRows(first.databasePath);
    assert.equal(row!.sent_ts, null);
    assert.ok(row!.payload !== null, 'still queued');
    assert.equal(row!.locked_until, null, 'released, not left leased');
    assert.ok(row!.next_attempt_ts !== null);
    await hung.stop();

    const sink = await SmtpSink.started({ port: smtpPort });
    cleanups.push(() => sink.stop());
    const second = await start(overrides, first.database);
    await sink.waitFor((m) => m.envelopeTo.includes('later@example.org'), 20_000);
    await until(() => outboxRows(second.databasePath)[0]!.sent_ts !== null, 'the mail to be marked sent');
    second.proc.kill('SIGTERM');
    assert.deepEqual(await second.proc.exited, { code: 0, signal: null });
  });
});
