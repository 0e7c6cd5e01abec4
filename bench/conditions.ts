import { execFileSync } from 'node:child_process';
import { closeSync, fsyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * The conditions a figure was taken in, for the results file: which code ran, how loaded the
 * machine was, and what an fsync costs on its disk (SQLite's commits and checkpoints wait on it).
 */

/** The one-, five- and fifteen-minute load averages, rounded. */
export function load(): number[] {
  return loadavg().map((l) => Number(l.toFixed(2)));
}

/** The commit of the git checkout holding `dir`, with whether its tree had uncommitted changes. */
export function commitOf(dir: string): { commit: string; dirty: boolean } | undefined {
  try {
    const git = (...args: string[]) => execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return { commit: git('rev-parse', 'HEAD'), dirty: git('status', '--porcelain', '--', '.') !== '' };
  } catch {
    return undefined;
  }
}

/** Median and worst time of `count` 4 KiB writes each followed by fsync, in a file under `dir`. */
export function fsyncCost(dir: string, count = 50): { median_ms: number; max_ms: number; samples: number } {
  const file = join(dir, 'fsync-probe');
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(4096, 7);
  const times: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const start = process.hrtime.bigint();
      writeSync(fd, block);
      fsyncSync(fd);
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  times.sort((a, b) => a - b);
  const round = (ms: number) => Number(ms.toFixed(3));
  return { median_ms: round(times[Math.floor(times.length / 2)]!), max_ms: round(times[times.length - 1]!), samples: count };
}

/** Where the src/ a run uses lives: its checkout's root, for commitOf. */
export function checkoutOf(src: string): string {
  return dirname(src);
}
