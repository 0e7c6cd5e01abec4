import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, beforeEach, describe, it } from 'node:test';
import { stringify as stringifyYaml } from 'yaml';
import { ADMIN_SECRET, registerWithSecret } from './helpers/admin.js';
import { HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';

const run = promisify(execFile);
type Json = Record<string, unknown>;

/**
 * synadm (the Synapse admin CLI, a Debian package) as a real client of Myelin's admin API. It must be
 * installed: .ci/run installs it with apt-get; on a workstation, `apt-get install synadm`.
 */
let installed: boolean | undefined;
function requireSynadm(): void {
  installed ??= (() => {
    const probe = spawnSync('synadm', ['--help'], { encoding: 'utf8' });
    return !probe.error && probe.status === 0;
  })();
  if (!installed) {
    throw new Error('synadm is not installed, so the admin API cannot be tried with a real client: install it with `apt-get install -y synadm` (.ci/run does)');
  }
}

/** The last line of synadm's output that is a JSON object (commands print notes before their answer). */
function lastJson(stdout: string): Json {
  const lines = stdout.split('\n').filter((line) => line.startsWith('{'));
  assert.ok(lines.length > 0, `no JSON in synadm's output:\n${stdout}`);
  return JSON.parse(lines[lines.length - 1]!) as Json;
}

for (const engine of HTTP_ENGINES) {
  describe(`synadm against Myelin (${engine})`, () => {
    let server: TestServer;
    let home: string;
    let config: string;

    before(async () => {
      server = await startTestServer(engine, { registration_shared_secret: ADMIN_SECRET });
      const admin = await registerWithSecret(server, 'root', 'root-password-1', true);
      home = mkdtempSync(join(tmpdir(), 'myelin-synadm-'));
      config = join(home, 'synadm.yaml');
      // synadm's own config keys; the server name is given, so synadm need not discover it.
      writeFileSync(
        config,
        stringifyYaml({ user: admin.user_id, token: admin.access_token, base_url: server.url, admin_path: '/_synapse/admin', matrix_path: '/_matrix', timeout: 30, server_discovery: 'well-known', homeserver: 'test.local', format: 'json' }),
        { mode: 0o600 },
      );
    });
    // Every test fails with the reason when synadm is missing: nothing here is skipped.
    beforeEach(() => requireSynadm());
    after(async () => {
      await server?.close();
      if (home) rmSync(home, { recursive: true, force: true });
    });

    /** Runs synadm non-interactively (--batch) with the test's config; its home (log file) is the test's. */
    const synadm = async (...args: string[]) => {
      requireSynadm();
      const { stdout, stderr } = await run('synadm', ['--batch', '--output', 'json', '--config-file', config, ...args], { env: { ...process.env, HOME: home }, timeout: 60_000 });
      return { stdout, stderr, json: () => lastJson(stdout) };
    };
    const canLogIn = async (user: string, password: string) => (await server.api.post('/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password })).status === 200;

    it('creates a user (user modify), lists, shows and searches users, and finds one by email', async () => {
      const created = (await synadm('user', 'modify', '@carol:test.local', '--password', 'carol-password-1', '--display-name', 'Carol', '--threepid', 'email', 'Carol@Example.org')).json();
      assert.equal(created.name, '@carol:test.local');
      assert.equal(created.displayname, 'Carol');
      assert.ok(await canLogIn('carol', 'carol-password-1'));

      const list = (await synadm('user', 'list')).json() as { users: Json[]; total: number };
      assert.deepEqual(list.users.map((u) => u.name), ['@carol:test.local', '@root:test.local']);
      assert.equal(list.total, 2);
      assert.equal(list.users.find((u) => u.name === '@root:test.local')!.admin, true);
      const paged = (await synadm('user', 'list', '--limit', '1')).json() as { users: Json[]; next_token?: string };
      assert.equal(paged.users.length, 1);
      assert.equal(paged.next_token, '1');
      const named = (await synadm('user', 'list', '--name', 'caro')).json() as { users: Json[] };
      assert.deepEqual(named.users.map((u) => u.name), ['@carol:test.local']);

      const details = (await synadm('user', 'details', '@carol:test.local')).json();
      assert.equal(details.displayname, 'Carol');
      assert.deepEqual((details.threepids as Json[]).map((t) => [t.medium, t.address]), [['email', 'carol@example.org']]);
      assert.equal(details.admin, false);

      // "user search" lists twice, lowercased and capitalised; both find Carol.
      const search = await synadm('user', 'search', 'CAROL');
      const results = search.stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { users: Json[] });
      assert.equal(results.length, 2);
      for (const result of results) assert.deepEqual(result.users.map((u) => u.name), ['@carol:test.local']);

      assert.deepEqual((await synadm('user', '3pid', '--medium', 'email', 'carol@example.org')).json(), { user_id: '@carol:test.local' });
      const unknown = (await synadm('user', '3pid', '--medium', 'email', 'nobody@example.org')).json();
      assert.equal(unknown.errcode, 'M_NOT_FOUND');
    });

    it('modifies a user: display name, admin flag, a localpart resolved to this server', async () => {
      const modified = (await synadm('user', 'modify', 'carol', '--display-name', 'Carol Two', '--admin')).json();
      assert.equal(modified.name, '@carol:test.local');
      assert.equal(modified.displayname, 'Carol Two');
      assert.equal(modified.admin, true);
      const viaApi = await server.api.get<Json>('/_synapse/admin/v2/users/@carol:test.local', { token: (await server.api.login('root', 'root-password-1')).access_token });
      assert.equal(viaApi.body.displayname, 'Carol Two');
      assert.equal(viaApi.body.admin, true);
    });

    it('resets passwords, logging the user out unless told not to', async () => {
      const session = await server.api.login('carol', 'carol-password-1');
      assert.deepEqual((await synadm('user', 'password', '@carol:test.local', '--no-logout', '--password', 'carol-password-2')).json(), {});
      assert.equal((await server.api.get('/v3/account/whoami', { token: session.access_token })).status, 200, '--no-logout keeps the session');
      assert.ok(await canLogIn('carol', 'carol-password-2'));
      assert.ok(!(await canLogIn('carol', 'carol-password-1')));
      assert.deepEqual((await synadm('user', 'password', '@carol:test.local', '--password', 'carol-password-3')).json(), {});
      assert.equal((await server.api.get('/v3/account/whoami', { token: session.access_token })).status, 401, 'logged out by the reset');
      assert.ok(await canLogIn('carol', 'carol-password-3'));
    });

    it('shows a user’s sessions (whois) and deactivates a user', async () => {
      await server.api.put('/_synapse/admin/v2/users/@dave:test.local', { password: 'dave-password-1' }, { token: (await server.api.login('root', 'root-password-1')).access_token });
      const session = await server.api.login('dave', 'dave-password-1');
      const whois = (await synadm('user', 'whois', '@dave:test.local')).json() as { user_id: string; devices: Record<string, unknown> };
      assert.equal(whois.user_id, '@dave:test.local');
      assert.deepEqual(Object.keys(whois.devices), [session.device_id]);

      const deactivated = (await synadm('user', 'deactivate', '@dave:test.local')).json();
      assert.deepEqual(deactivated, { id_server_unbind_result: 'success' });
      assert.ok(!(await canLogIn('dave', 'dave-password-1')));
      assert.equal((await server.api.get('/v3/account/whoami', { token: session.access_token })).status, 401);
      assert.equal((await synadm('user', 'details', '@dave:test.local')).json().deactivated, true);
      const listed = (await synadm('user', 'list')).json() as { users: Json[] };
      assert.ok(!listed.users.some((u) => u.name === '@dave:test.local'), 'not listed without --deactivated');
      const all = (await synadm('user', 'list', '--deactivated')).json() as { users: Json[] };
      assert.equal(all.users.find((u) => u.name === '@dave:test.local')?.deactivated, true);
    });

    it('manages registration tokens', async () => {
      const made = (await synadm('regtok', 'new', '--token', 'synadm-token', '--uses-allowed', '2')).json();
      assert.deepEqual(made, { token: 'synadm-token', uses_allowed: 2, pending: 0, completed: 0, expiry_time: null });
      const random = (await synadm('regtok', 'new', '--length', '20')).json();
      assert.match(String(random.token), /^[A-Za-z0-9._~-]{20}$/);
      const listed = (await synadm('regtok', 'list')).json() as { registration_tokens: Json[] };
      assert.deepEqual(listed.registration_tokens.map((t) => t.token).sort(), [random.token, 'synadm-token'].sort());
      assert.deepEqual((await synadm('regtok', 'details', 'synadm-token', '--timestamp')).json(), made);
      const expiry = Date.now() + 86_400_000;
      const updated = (await synadm('regtok', 'update', 'synadm-token', '--uses-allowed', '0', '--expiry-ts', String(expiry))).json();
      assert.deepEqual(updated, { ...made, uses_allowed: 0, expiry_time: expiry });
      const invalid = (await synadm('regtok', 'list', '--invalid', '--timestamp')).json() as { registration_tokens: Json[] };
      assert.deepEqual(invalid.registration_tokens.map((t) => t.token), ['synadm-token']);
      const unlimited = (await synadm('regtok', 'update', 'synadm-token', '--uses-allowed', '-1', '--expiry-ts', '-1')).json();
      assert.deepEqual(unlimited, { ...made, uses_allowed: null });
      const deleted = await synadm('regtok', 'delete', 'synadm-token');
      assert.match(deleted.stdout, /successfully deleted/);
      assert.equal((await synadm('regtok', 'details', 'synadm-token')).json().errcode, 'M_NOT_FOUND');
      const left = (await synadm('regtok', 'list', '--valid')).json() as { registration_tokens: Json[] };
      assert.deepEqual(left.registration_tokens.map((t) => t.token), [random.token]);
    });

    it('reads the server version', async () => {
      assert.match(String((await synadm('version')).json().server_version), /\(Myelin\)$/);
    });
  });
}
