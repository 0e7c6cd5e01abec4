import { PerformanceObserver, performance } from 'node:perf_hooks';
import { getHeapSpaceStatistics, getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** How often the heap is looked at. */
const CHECK_MS = 2_000;
/** How long without any garbage collection counts as quiet (V8 judges allocation over 5 s). */
const QUIET_MS = 6_000;
/** Below this allocation rate (bytes/ms) V8 shrinks the young generation at a full collection (its own threshold is 1,000). */
const LOW_ALLOCATION_RATE = 500;
/** A young generation smaller than this is left alone: it grows from 1 MB, 32 MB at most on 64-bit Node 20. */
const GROWN_YOUNG_GENERATION_BYTES = 8 * 1024 * 1024;
/** At most one collection of ours this often. */
const BACKOFF_MS = 60_000;

/**
 * Gives V8's young generation back when the process is quiet. Loading the modules at start-up
 * grows it to its largest (two 16 MB semi-spaces, because nearly everything allocated then
 * survives), and a burst of requests does the same; V8 shrinks it only at a full collection made
 * while little is being allocated, and a quiet server makes none (its next one may be hours
 * away), so it kept ~30 MB of empty young generation for good: most of the difference between an
 * idle server at ~145 MB and at ~110 MB (bench/media-stream.ts). Once no collection has happened
 * for QUIET_MS and the heap grew slower than LOW_ALLOCATION_RATE meanwhile, this runs one full
 * collection (a pause of 10 to 30 ms on an idle process), at most once per BACKOFF_MS; under load
 * collections are frequent, nothing is done, and V8 keeps its young generation for throughput.
 * Returns the function that stops it.
 */
export function returnYoungGenerationWhenQuiet(): () => void {
  const gc = exposedGc();
  if (!gc) return () => undefined;
  let window: { at: number; used: number } | undefined;
  let lastOwnGc = -Infinity;
  const observer = new PerformanceObserver(() => (window = undefined));
  observer.observe({ entryTypes: ['gc'] });
  const timer = setInterval(() => {
    const now = performance.now();
    const used = getHeapStatistics().used_heap_size;
    if (!window) return void (window = { at: now, used });
    const elapsed = now - window.at;
    if (elapsed < QUIET_MS || now - lastOwnGc < BACKOFF_MS) return;
    const young = youngGenerationSize();
    if (young < GROWN_YOUNG_GENERATION_BYTES || (used - window.used) / elapsed >= LOW_ALLOCATION_RATE) return;
    lastOwnGc = now;
    window = undefined;
    gc();
  }, CHECK_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    observer.disconnect();
  };
}

/** Between the scavenges that follow start-up's full collection: long enough that the rate V8 measures is far below its threshold. */
const START_UP_PAUSE_MS = 2;
/** V8 judges allocation over its last ten or so collections; a dozen quiet ones replace start-up's. */
const START_UP_MAX_SCAVENGES = 30;

/**
 * Gives back the young generation that loading the modules grew (to its largest, ~30 MB), once
 * start-up is done (`start` calls it right after the listeners open; it blocks the thread for
 * ~0.1 s, so nothing else allocates meanwhile), instead of 6 s later (returnYoungGenerationWhenQuiet):
 * a request made right after start-up (e.g. a large upload) would otherwise find it full-sized and
 * add its own garbage on top. A full collection alone does not do it: V8 shrinks the young
 * generation only when its measured allocation rate is low, and it measures that over its last
 * collections, which are start-up's. So after one full collection (start-up's garbage goes, what
 * survives moves to the old generation), scavenges of the then empty young generation, 2 ms apart
 * with nothing allocated in between (the thread waits in Atomics.wait), push start-up's samples
 * out until V8 shrinks it, usually after 10 to 15 (each well under a millisecond). At most
 * START_UP_MAX_SCAVENGES; under load later V8 grows it again as it sizes it. Returns the young
 * generation's size before and after, in bytes.
 */
export function returnYoungGenerationAfterStartUp(): { before: number; after: number } {
  const before = youngGenerationSize();
  const gc = exposedGc();
  if (!gc || before < GROWN_YOUNG_GENERATION_BYTES) return { before, after: before };
  gc();
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const minor = { type: 'minor' };
  // getHeapStatistics() allocates less than the per-space statistics: the loop must allocate next to nothing.
  const grown = getHeapStatistics().total_heap_size;
  for (let i = 0; i < START_UP_MAX_SCAVENGES; i++) {
    Atomics.wait(pause, 0, 0, START_UP_PAUSE_MS);
    gc(minor);
    if (getHeapStatistics().total_heap_size < grown - GROWN_YOUNG_GENERATION_BYTES) break;
  }
  return { before, after: youngGenerationSize() };
}

function youngGenerationSize(): number {
  return getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0;
}

/** The gc() that --expose-gc defines, taken from a fresh context; the flag is set back at once, so no later context or worker thread has a gc global. */
function exposedGc(): ((options?: { type: string }) => void) | undefined {
  setFlagsFromString('--expose-gc');
  try {
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as (options?: { type: string }) => void) : undefined;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}
