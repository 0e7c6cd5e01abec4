import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Api } from './helpers/api.js';
import { scrape } from './helpers/metrics.js';
import { startMyelinProcess } from './helpers/process.js';
import { until } from './helpers/until.js';
import { freePort, freshDatabase, rawTestConfig } from './helpers/server.js';
import { SmtpSink } from './helpers/smtp.js';
import { codeOf, linkOf, secret } from './helpers/threepid-email.js';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..');
/** What runs TypeScript: none of it may be reachable from the built server. */
const LOADERS = ['tsx', 'esbuild', '@esbuild', 'typescript', '.bin'];

/**
 * The production build: tsconfig.build.json compiled to JavaScript, run by plain `node` in a layout
 * like an installed one (package.json, templates/, node_modules) from which every TypeScript loader
 * has been left out, so a single `.ts` import, a worker thread that needs tsx, or a path that only
 * resolves from src/ fails here.
 */
describe('the production build runs without a TypeScript loader', () => {
  let app: string;
  let smtp: SmtpSink;
  const cleanups: (() => Promise<void> | void)[] = [];

  before(async () => {
    app = mkdtempSync(join(tmpdir(), 'myelin-build-'));
    cleanups.push(() => rmSync(app, { recursive: true, force: true }));
    // The build's own config; only the output goes elsewhere. Type checking is `npm test`'s first step.
    await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(app, 'dist'), '--tsBuildInfoFile', join(app, 'dist/.tsbuildinfo'), '--noCheck'], { cwd: ROOT });
    copyFileSync(join(ROOT, 'package.json'), join(app, 'package.json'));
    symlinkSync(join(ROOT, 'templates'), join(app, 'templates'));
    mkdirSync(join(app, 'node_modules'));
    for (const entry of readdirSync(join(ROOT, 'node_modules'))) {
      if (!LOADERS.includes(entry)) symlinkSync(join(ROOT, 'node_modules', entry), join(app, 'node_modules', entry));
    }
    smtp = await SmtpSink.started();
    cleanups.push(() => smtp.stop());
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('has compiled JavaScript only, and no loader within reach', async () => {
    assert.ok(existsSync(join(app, 'dist/main.js')));
    assert.ok(existsSync(join(app, 'dist/delivery/email/smtp-thread-main.js')));
    assert.ok(existsSync(join(app, 'dist/storage/migrations/0001_core.js')));
    await assert.rejects(run(process.execPath, ['--input-type=module', '-e', "await import('tsx/esm/api')"], { cwd: app }), /ERR_MODULE_NOT_FOUND|Cannot find package/);
    const usage = await run(process.execPath, [join(app, 'dist/main.js'), 'help'], { cwd: app, env: { PATH: process.env.PATH } });
    assert.match(usage.stdout, /Usage: myelin/);
  });

  it('serves clients, sends mail from its SMTP thread with the shipped templates, answers /health and metrics, and stops on SIGTERM', async () => {
    const fresh = await freshDatabase('sqlite');
    cleanups.push(() => fresh.drop());
    const port = await freePort();
    const config = rawTestConfig(port, fresh.database, {
      log_level: 'info',
      enable_metrics: true,
      email: smtp.emailConfig(),
      sms: { provider: 'log' },
      rc_3pid_validation: { per_second: 1000, burst_count: 1000 },
    }, { resources: [{ names: ['client', 'metrics'] }] });
    const dir = dirname((fresh.database.args as { database: string }).database);
    const proc = await startMyelinProcess(dir, [join(app, 'dist/main.js')], config, { cwd: app });
    cleanups.push(async () => {
      if (proc.child.exitCode === null) proc.kill('SIGKILL');
      await proc.exited;
    });
    const api = new Api(proc.url);

    // The schema came from the compiled migrations; accounts work.
    const alice = await api.register('alice');
    assert.equal((await api.get('/v3/account/whoami', { token: alice.access_token })).body.user_id, '@alice:test.local');
    // The CLI from the build too, on the same database.
    const created = await run(process.execPath, [join(app, 'dist/main.js'), 'register-user', '--config', join(dir, 'homeserver.yaml'), '--user', 'bob', '--password', 'a long enough password'], { cwd: app, env: { PATH: process.env.PATH } });
    assert.match(created.stdout, /Created @bob:test\.local/);
    assert.equal((await api.login('bob', 'a long enough password')).user_id, '@bob:test.local');

    // A mail rendered from templates/ and sent over SMTP by the worker thread (compiled .js, no tsx).
    const requested = await api.post('/v3/register/email/requestToken', { client_secret: secret(), email: 'built@example.org', send_attempt: 1 });
    assert.equal(requested.status, 200);
    const mail = await smtp.waitFor((m) => m.envelopeTo.includes('built@example.org'), 20_000);
    assert.match(linkOf(mail), /submit_token\?/);
    assert.match(codeOf(mail), /^\d{6}$/);
    assert.match(mail.html, /<html/i);

    const health = await fetch(`${proc.url}/health`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), 'OK');
    // The sink has the mail as soon as SMTP ends; the outbox counts it once the SMTP thread has answered.
    const sent = async () => (await scrape(`${proc.url}/_synapse/metrics`)).value('myelin_outbox_sent_total', { channel: 'email' });
    await until(async () => (await sent()) === 1, 'the mail counted as sent');

    proc.kill('SIGTERM');
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
    assert.equal(proc.stderr(), '');
    assert.ok(proc.logs().some((l) => l.msg === 'shut down'));
  });
});
