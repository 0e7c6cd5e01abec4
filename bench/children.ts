import { fork, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { resolve } from 'node:path';

import type { LoopDelay } from './loop-delay.js';

export { freePort } from '../test/helpers/server.js';

type Message = Record<string, unknown>;

/** A child process (a server under benchmark, or the SMTP sink) that talks to us over IPC. */
export class ChildHandle {
  private readonly exited: Promise<void>;

  constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  /** Sends a message and waits for the answer that has `key` (or an `error`). */
  request(message: Message, key: string, timeoutMs = 120_000): Promise<Message> {
    const reply = waitFor(this.child, (m) => key in m || 'error' in m, timeoutMs).then((m) => {
      if ('error' in m) throw new Error(`child failed: ${String(m.error)}`);
      return m;
    });
    this.child.send(message);
    return reply;
  }

  /** CPU time (user + system) the process has used so far, in microseconds. */
  async cpuMicros(): Promise<number> {
    return (await this.cpuAndLoop()).cpuMicros;
  }

  /** cpuMicros, and the event loop's delay since the last call (servers under benchmark only). */
  async cpuAndLoop(): Promise<{ cpuMicros: number; loop?: LoopDelay }> {
    const { cpu, loop } = (await this.request({ cpu: true }, 'cpu')) as { cpu: NodeJS.CpuUsage; loop?: LoopDelay };
    return { cpuMicros: cpu.user + cpu.system, loop };
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }

  /** SIGTERM, then SIGKILL if it has not gone within 5 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

function waitFor(child: ChildProcess, predicate: (m: Message) => boolean, timeoutMs: number): Promise<Message> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Message) => {
      if (!predicate(m)) return;
      cleanup();
      resolve(m);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`child exited (code ${code}) before answering`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error('child did not answer in time'));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** Forks bench/<script> (or an absolute path) under tsx with stdout going to `logFile`; resolves once it says {ready, url}. */
export async function startChild(script: string, env: Record<string, string>, logFile: string): Promise<ChildHandle> {
  const out = openSync(logFile, 'a');
  const child = fork(resolve(import.meta.dirname, script), [], {
    // BENCH_NODE_ARGS adds Node flags to the servers, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof'.
    execArgv: ['--import', 'tsx', ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [])],
    env: { ...process.env, ...env },
    stdio: ['ignore', out, 'inherit', 'ipc'],
  });
  const ready = await waitFor(child, (m) => m.ready === true, 60_000);
  return new ChildHandle(child, ready.url as string);
}
