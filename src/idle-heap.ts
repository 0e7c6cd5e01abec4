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
    const young = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0;
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

/** The gc() that --expose-gc defines, taken from a fresh context; the flag is set back at once, so no later context or worker thread has a gc global. */
function exposedGc(): (() => void) | undefined {
  setFlagsFromString('--expose-gc');
  try {
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}
