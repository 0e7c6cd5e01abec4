import { PerformanceObserver, constants } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { returnYoungGenerationAfterStartUp, returnYoungGenerationWhenQuiet } from '../../src/idle-heap.js';

/**
 * Run by test/ops-idle-heap.test.ts in a process of its own (with V8's memory reducer off, so that
 * only src/idle-heap.ts gives anything back): grows the young generation as a start-up does, then
 * with `watch` starts the watch, and after `quiet` or `busy` seconds prints the sizes and how many
 * forced (own) collections there were as JSON. With `start-up` it gives the young generation back
 * at once, as `start` does once it listens (`full-gc`: one full collection only), and prints the
 * sizes and how long that took.
 */
const [mode, activity, seconds] = process.argv.slice(2) as ['watch' | 'none' | 'start-up' | 'full-gc', 'quiet' | 'busy', string];
const young = () => getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')!.space_size;
const kept: unknown[] = [];
for (let i = 0; i < 1_000_000 && young() < 16 * 1024 * 1024; i++) kept.push({ i, text: `kept ${i}`, list: [i, i + 1] });
const grown = young();
let forced = 0;
const observer = new PerformanceObserver((list) => {
  // A gc entry's detail holds V8's flags; @types/node 20 does not declare it.
  for (const entry of list.getEntries()) if (((entry as unknown as { detail?: { flags?: number } }).detail?.flags ?? 0) & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED) forced++;
});
observer.observe({ entryTypes: ['gc'] });
if (mode === 'start-up' || mode === 'full-gc') {
  const started = performance.now();
  if (mode === 'start-up') returnYoungGenerationAfterStartUp();
  else (runInNewContext('gc') as () => void)();
  const ms = performance.now() - started;
  console.log(JSON.stringify({ grown, after: young(), ms, kept: kept.length }));
  process.exit(0);
}
const stop = mode === 'watch' ? returnYoungGenerationWhenQuiet() : () => undefined;
const until = Date.now() + Number(seconds) * 1000;
let sink = 0;
while (Date.now() < until) {
  // Busy: garbage all the time, so collections keep happening; quiet: nothing but the timers.
  if (activity === 'busy') for (let i = 0; i < 20_000; i++) sink += { i, text: `garbage ${i}` }.text.length;
  await new Promise((resolve) => setTimeout(resolve, activity === 'busy' ? 0 : 250));
  if (activity === 'quiet' && mode === 'watch' && young() <= grown / 4) break;
}
await new Promise((resolve) => setTimeout(resolve, 50)); // the observer's last entries
stop();
observer.disconnect();
console.log(JSON.stringify({ grown, after: young(), forced, kept: kept.length, sink }));
