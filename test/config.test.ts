import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { parseDuration } from '../src/config/duration.js';
import { generateConfig } from '../src/config/generate.js';
import { ConfigError, embeddedDefaults, loadConfig, parseConfig } from '../src/config/load.js';
import { ENGINES, freshDatabase, startTestServer } from './helpers/server.js';

const run = promisify(execFile);
const MIN = { server_name: 'example.org' };

function configError(raw: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): string {
  try {
    parseConfig(raw, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

describe('config loader', () => {
  it('fills Synapse-like defaults from just a server_name', () => {
    const { config, warnings } = parseConfig(MIN);
    assert.deepEqual(warnings, []);
    assert.equal(config.server_name, 'example.org');
    assert.equal(config.enable_registration, false);
    assert.equal(config.database.name, 'sqlite3');
    assert.equal(config.listeners[0]!.port, 8008);
    assert.equal(config.bcrypt_rounds, 12);
    assert.equal(config.password_config.enabled, true);
    assert.equal(config.rc_login.failed_attempts.burst_count, 3);
  });

  it('the embedded defaults are a valid local development config', () => {
    const { config, warnings } = parseConfig(embeddedDefaults());
    assert.deepEqual(warnings, []);
    assert.equal(config.server_name, 'localhost');
    assert.deepEqual(config.listeners[0]!.bind_addresses, ['127.0.0.1']);
    assert.equal(config.listeners[0]!.port, 8008);
    assert.deepEqual(config.database, { name: 'sqlite3', args: { database: './data/homeserver.db' } });
    assert.equal(loadConfig(undefined, {}).config.server_name, 'localhost');
  });

  it('accepts Synapse keys such as listener type, tls, x_forwarded and resources, and postgres databases', () => {
    const { config, warnings } = parseConfig({
      ...MIN,
      listeners: [{ port: 8448, bind_addresses: ['::1', '127.0.0.1'], type: 'http', tls: false, x_forwarded: true, resources: [{ names: ['client', 'federation'], compress: false }] }],
      database: { name: 'psycopg2', args: { user: 'synapse', password: 'secret', database: 'synapse', host: 'db', port: 5433, cp_min: 5, cp_max: 10 } },
    });
    assert.deepEqual(warnings, []);
    assert.equal(config.listeners[0]!.x_forwarded, true);
    assert.equal(config.database.name, 'psycopg2');
    assert.equal(parseConfig({ ...MIN, database: { name: 'postgres', args: { database: 'x' } } }).config.database.name, 'postgres');
  });

  it('says why Synapse settings for identity-server delegation are ignored', () => {
    const { config, warnings } = parseConfig({ ...MIN, account_threepid_delegates: { msisdn: 'http://localhost:8090' }, trust_identity_server_for_password_resets: true });
    assert.equal(warnings.length, 2);
    assert.match(warnings[0]!, /^config key 'account_threepid_delegates' is ignored: .*sms section/);
    assert.match(warnings[1]!, /^config key 'trust_identity_server_for_password_resets' is ignored: removed in Synapse 1\.66/);
    assert.equal(config.sms, undefined);
  });

  it('warns about unknown keys, at any depth, by dotted path', () => {
    const { warnings } = parseConfig({
      ...MIN,
      no_such_option: 1,
      password_config: { enabled: true, frobnicate: true },
      listeners: [{ port: 8008, bogus: 'x' }],
      rc_login: { address: { per_second: 1, burst_count: 2, extra: 1 } },
    });
    const text = warnings.join('\n');
    for (const key of ['no_such_option', 'password_config.frobnicate', 'listeners[0].bogus', 'rc_login.address.extra']) {
      assert.ok(text.includes(`'${key}'`), `${key} in ${text}`);
    }
    assert.equal(warnings.length, 4);
  });

  for (const [name, raw, key] of [
    ['a boolean given as a word', { enable_registration: 'yes' }, 'enable_registration'],
    ['a port that is not a number', { listeners: [{ port: 'http' }] }, 'listeners.0.port'],
    ['a port out of range', { listeners: [{ port: 70000 }] }, 'listeners.0.port'],
    ['a negative rate', { rc_login: { address: { per_second: -1 } } }, 'rc_login.address.per_second'],
    ['a fractional burst count', { rc_registration: { per_second: 1, burst_count: 1.5 } }, 'rc_registration.burst_count'],
    ['bcrypt_rounds out of range', { bcrypt_rounds: 3 }, 'bcrypt_rounds'],
    ['an unknown database engine', { database: { name: 'mysql' } }, 'database.name'],
    ['an unknown password algorithm', { password_config: { algorithm: 'md5' } }, 'password_config.algorithm'],
    ['a policy length that is a string', { password_config: { policy: { minimum_length: 'eight' } } }, 'password_config.policy.minimum_length'],
    ['a bad duration', { refreshable_access_token_lifetime: '10 parsecs' }, 'refreshable_access_token_lifetime'],
    ['a bad public_baseurl', { public_baseurl: 'ftp://example.org/' }, 'public_baseurl'],
    ['an empty shared secret', { registration_shared_secret: '' }, 'registration_shared_secret'],
    ['an unknown log level', { log_level: 'loud' }, 'log_level'],
  ] as const) {
    it(`refuses ${name}, naming the key`, () => {
      const message = configError({ ...MIN, ...raw });
      assert.ok(message.includes(`'${key}'`), message);
    });
  }

  it('refuses a config without server_name or with an invalid one', () => {
    assert.ok(configError({}).includes("'server_name'"));
    assert.ok(configError({ server_name: 'bad name/with slash' }).includes("'server_name'"));
  });

  it('reads Synapse-style durations', () => {
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('7d'), 604_800_000);
    assert.equal(parseDuration('1w'), 604_800_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('1500'), 1500);
    assert.equal(parseDuration(42), 42);
    assert.throws(() => parseDuration('soon'));
    assert.throws(() => parseDuration('-5m'));
    const { config } = parseConfig({ ...MIN, refreshable_access_token_lifetime: '5m', refresh_token_lifetime: '2h', ui_auth_session_lifetime: 60_000 });
    assert.equal(config.refreshable_access_token_lifetime, 300_000);
    assert.equal(config.refresh_token_lifetime, 7_200_000);
    assert.equal(config.ui_auth_session_lifetime, 60_000);
  });

  it('applies MYELIN__ environment overrides, keeping secrets as strings', () => {
    const env = {
      MYELIN__REGISTRATION_SHARED_SECRET: '0123',
      MYELIN__ENABLE_REGISTRATION: 'true',
      MYELIN__RC_LOGIN__ADDRESS__PER_SECOND: '5',
      MYELIN__PASSWORD_CONFIG__POLICY__MINIMUM_LENGTH: '12',
      MYELIN__DATABASE__ARGS__PASSWORD: '999',
      MYELIN__REFRESHABLE_ACCESS_TOKEN_LIFETIME: '10m',
      UNRELATED: 'x',
    };
    const { config, warnings } = parseConfig({ ...MIN, database: { name: 'psycopg2', args: { user: 'u' } } }, env);
    assert.deepEqual(warnings, []);
    assert.equal(config.registration_shared_secret, '0123');
    assert.equal(config.enable_registration, true);
    assert.equal(config.rc_login.address.per_second, 5);
    assert.equal(config.password_config.policy.minimum_length, 12);
    assert.equal((config.database.args as { password?: string }).password, '999');
    assert.equal(config.refreshable_access_token_lifetime, 600_000);
    // A wrong type from the environment names the key as well.
    assert.ok(configError(MIN, { MYELIN__BCRYPT_ROUNDS: 'many' }).includes("'bcrypt_rounds'"));
  });

  it('reports unreadable, invalid and non-mapping YAML files as ConfigError', () => {
    const dir = mkdtempSync(join(tmpdir(), 'myelin-config-'));
    try {
      assert.throws(() => loadConfig(join(dir, 'missing.yaml'), {}), ConfigError);
      writeFileSync(join(dir, 'bad.yaml'), 'server_name: [unclosed\n');
      assert.throws(() => loadConfig(join(dir, 'bad.yaml'), {}), ConfigError);
      writeFileSync(join(dir, 'list.yaml'), '- a\n- b\n');
      assert.throws(() => loadConfig(join(dir, 'list.yaml'), {}), ConfigError);
      writeFileSync(join(dir, 'ok.yaml'), 'server_name: example.org\nenable_registration: true\n');
      assert.equal(loadConfig(join(dir, 'ok.yaml'), {}).config.enable_registration, true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('generate-config writes a config that loads back, with a fresh secret each time', () => {
    const first = generateConfig('example.org');
    const second = generateConfig('example.org');
    const a = parseConfig(parseYaml(first) as Record<string, unknown>);
    const b = parseConfig(parseYaml(second) as Record<string, unknown>);
    assert.deepEqual(a.warnings, []);
    assert.equal(a.config.server_name, 'example.org');
    assert.equal(a.config.public_baseurl, 'https://example.org/');
    assert.ok((a.config.registration_shared_secret ?? '').length >= 32);
    assert.notEqual(a.config.registration_shared_secret, b.config.registration_shared_secret);
    assert.match(first, /^# /m, 'the file is commented');
    const pg = parseConfig(parseYaml(generateConfig('example.org', { postgres: true })) as Record<string, unknown>);
    assert.deepEqual(pg.warnings, []);
    assert.equal(pg.config.database.name, 'psycopg2');
  });
});

describe('command line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'myelin-cli-'));
  // What `npx tsx src/main.ts` runs, without npx's start-up cost.
  const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    run(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: join(import.meta.dirname, '..'), env: { ...process.env, ...env }, timeout: 60_000 });
  const fails = async (args: string[]) => {
    try {
      await cli(args);
    } catch (err) {
      return err as { code: number; stderr: string; stdout: string };
    }
    assert.fail(`expected ${args.join(' ')} to fail`);
  };
  after(() => rmSync(dir, { recursive: true, force: true }));

  let generated: string;
  before(async () => {
    const out = join(dir, 'homeserver.yaml');
    const res = await cli(['generate-config', '--server-name', 'cli.example', '--output', out]);
    assert.match(res.stdout, /Wrote/);
    generated = readFileSync(out, 'utf8');
    assert.equal(statSync(out).mode & 0o777, 0o600, 'the config holds secrets: only its owner may read it');
  });

  it('generate-config writes a loadable file and refuses to overwrite it; a bad config exits naming the key', async () => {
    const { config, warnings } = loadConfig(join(dir, 'homeserver.yaml'), {});
    assert.deepEqual(warnings, []);
    assert.equal(config.server_name, 'cli.example');
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'server_name: example.org\nenable_registration: maybe\n');
    const [again, bad] = await Promise.all([
      fails(['generate-config', '--server-name', 'cli.example', '--output', join(dir, 'homeserver.yaml')]),
      fails(['register-user', '--config', broken, '--user', 'x', '--password', 'y']),
    ]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exists/);
    assert.equal(readFileSync(join(dir, 'homeserver.yaml'), 'utf8'), generated);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /enable_registration/);
    assert.ok(!/\n\s+at /.test(bad.stderr), 'no stack trace for a config error');
  });

  it('register-user creates an account that can log in, on both engines, and refuses a taken name', async () => {
    const databases = await Promise.all(ENGINES.map((engine) => freshDatabase(engine)));
    try {
      const paths = ENGINES.map((engine, i) => {
        const path = join(dir, `${engine}.yaml`);
        writeFileSync(path, stringifyYaml({ ...(parseYaml(generated) as object), server_name: 'test.local', database: databases[i]!.database }));
        return path;
      });
      const created = await Promise.all(paths.map((path) => cli(['register-user', '--config', path, '--user', 'CliAdmin', '--password', 'cli-password-1'])));
      for (const res of created) {
        assert.match(res.stdout, /Created @cliadmin:test\.local/);
        assert.ok(!res.stdout.includes('cli-password-1') && !res.stderr.includes('cli-password-1'), 'the password is not echoed');
      }
      const dup = await fails(['register-user', '--config', paths[0]!, '--user', 'cliadmin', '--password', 'x']);
      assert.equal(dup.code, 1);
      assert.match(dup.stderr, /taken/i);
      for (const [i, engine] of ENGINES.entries()) {
        const server = await startTestServer(engine, {}, { database: databases[i]!.database });
        try {
          const login = await server.api.login('cliadmin', 'cli-password-1');
          assert.equal(login.user_id, '@cliadmin:test.local');
        } finally {
          await server.close();
        }
      }
    } finally {
      await Promise.all(databases.map((d) => d.drop()));
    }
  });
});
