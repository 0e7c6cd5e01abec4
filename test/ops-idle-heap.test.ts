import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..');

interface Outcome {
  grown: number;
  after: number;
  forced: number;
}

/** test/helpers/young-generation-child.ts in a process of its own, V8's memory reducer off. */
async function child(mode: 'watch' | 'none', activity: 'quiet' | 'busy', seconds: number): Promise<Outcome> {
  const { stdout } = await run(process.execPath, ['--no-memory-reducer', '--import', 'tsx', 'test/helpers/young-generation-child.ts', mode, activity, String(seconds)], { cwd: ROOT });
  return JSON.parse(stdout) as Outcome;
}

/** The same child, giving the young generation back right after growing it (`full-gc`: by one exposed full collection). */
async function startUpChild(mode: 'start-up' | 'full-gc'): Promise<{ grown: number; after: number; ms: number }> {
  const { stdout } = await run(process.execPath, ['--no-memory-reducer', ...(mode === 'full-gc' ? ['--expose-gc'] : []), '--import', 'tsx', 'test/helpers/young-generation-child.ts', mode, 'quiet', '0'], { cwd: ROOT });
  return JSON.parse(stdout) as { grown: number; after: number; ms: number };
}

/**
 * The young generation grows when much of what is allocated survives (a server's start-up) and V8
 * gives it back only at a full collection made while little is allocated, which a quiet process
 * never makes; src/idle-heap.ts makes one (`npm start` relies on it for an idle server's memory,
 * README's media section).
 */
describe('the young generation of a quiet process', () => {
  it('is given back within seconds of going quiet, and only by the watch', async () => {
    const [watched, control] = await Promise.all([child('watch', 'quiet', 30), child('none', 'quiet', 20)]);
    assert.ok(watched.grown >= 16 * 1024 * 1024, `the young generation grew to ${watched.grown} bytes only`);
    assert.ok(watched.after <= watched.grown / 4, `still ${watched.after} of ${watched.grown} bytes after 30 s`);
    assert.equal(watched.forced, 1);
    // Without the watch nothing gives it back: what the watch does is not V8's own doing.
    assert.ok(control.after >= control.grown, `given back without the watch: ${control.after} of ${control.grown} bytes`);
    assert.equal(control.forced, 0);
  });

  it('makes no collection of its own while the process keeps allocating', async () => {
    const busy = await child('watch', 'busy', 12);
    assert.equal(busy.forced, 0);
    assert.ok(busy.after >= busy.grown, `given back while busy: ${busy.after} of ${busy.grown} bytes`);
  });

  it('is given back right after start-up, where one full collection alone keeps it', async () => {
    const [startUp, fullGc] = [await startUpChild('start-up'), await startUpChild('full-gc')];
    assert.ok(startUp.grown >= 16 * 1024 * 1024, `the young generation grew to ${startUp.grown} bytes only`);
    assert.ok(startUp.after <= startUp.grown / 4, `still ${startUp.after} of ${startUp.grown} bytes`);
    // V8 shrinks it only once its measured allocation rate is low: a full collection right after
    // the allocations does not, which is why start-up's samples are pushed out first.
    assert.ok(fullGc.grown >= 16 * 1024 * 1024, `the young generation grew to ${fullGc.grown} bytes only`);
    assert.ok(fullGc.after >= fullGc.grown, `given back by a full collection alone: ${fullGc.after} of ${fullGc.grown} bytes`);
  });
});
