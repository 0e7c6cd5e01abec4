import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './children.js';

/**
 * A Myelin build started as `npm start` runs it (`node dist/main.js start`), on a fresh SQLite
 * database in a temp dir, with open registration and a cheap argon2 (one registration should not
 * leave argon2's 19 MiB in memory figures). `extra` adds to or overrides the config.
 */
export async function startBuiltServer(options: {
  prefix: string;
  extra?: Record<string, unknown>;
  /** What to run, given the port, the temp dir and the config's path: by default `node dist/main.js start` in `cwd`. */
  command?: (port: number, dir: string, configPath: string) => { cwd: string; args: string[] };
  cwd?: string;
  nodeArgs?: string[];
}): Promise<{ child: ChildProcess; url: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), options.prefix));
  const port = await freePort();
  const configPath = join(dir, 'homeserver.yaml');
  writeFileSync(
    configPath,
    JSON.stringify({
      server_name: 'bench.local',
      listeners: [{ port, bind_addresses: ['127.0.0.1'] }],
      database: { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } },
      log_level: 'warn',
      enable_registration: true,
      enable_registration_without_verification: true,
      password_config: { argon2: { memory_cost: 1024, time_cost: 1, parallelism: 1 } },
      ...options.extra,
    }),
  );
  const { cwd, args } = options.command?.(port, dir, configPath) ?? { cwd: options.cwd, args: [...(options.nodeArgs ?? []), 'dist/main.js', 'start', '--config', configPath] };
  const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/_matrix/client/versions`)).status === 200) break;
    } catch {
      if (i > 1200) throw new Error('the server did not start');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, url, dir };
}
