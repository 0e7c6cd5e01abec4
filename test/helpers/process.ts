import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A Myelin process started as an admin would start it, its JSON log lines collected. */
export interface MyelinProcess {
  child: ChildProcess;
  url: string;
  /** Every line the process wrote to stdout, in order. */
  lines: string[];
  /** The lines that parse as JSON. */
  logs(): Record<string, unknown>[];
  /** Resolves with the exit code (and signal) once the process has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
  kill(signal?: NodeJS.Signals): void;
}

/**
 * Writes `config` (JSON is YAML) to `dir`/homeserver.yaml and runs `node <args> start --config it`,
 * e.g. args ['--import', 'tsx', 'src/main.ts'] or ['dist/main.js']. Resolves once /versions answers.
 */
export async function startMyelinProcess(dir: string, nodeArgs: string[], config: Record<string, unknown>, options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<MyelinProcess> {
  const configPath = join(dir, 'homeserver.yaml');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const listener = (config.listeners as { port: number }[])[0]!;
  const url = `http://127.0.0.1:${listener.port}`;
  const child = spawn(process.execPath, [...nodeArgs, 'start', '--config', configPath], {
    cwd: options.cwd,
    env: options.env ?? { PATH: process.env.PATH },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let partial = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
  });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const proc: MyelinProcess = {
    child,
    url,
    lines,
    logs: () =>
      lines.flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
    exited,
    stderr: () => err,
    kill: (signal = 'SIGTERM') => void child.kill(signal),
  };
  const deadline = Date.now() + 60_000;
  let ended = false;
  void exited.then(() => (ended = true));
  for (;;) {
    if (ended) throw new Error(`Myelin exited during start-up: ${err}${lines.join('\n')}`);
    try {
      const res = await fetch(`${url}/_matrix/client/versions`);
      if (res.status === 200) return proc;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`Myelin did not answer /versions within 60 s: ${err}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
