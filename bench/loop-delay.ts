import { monitorEventLoopDelay } from 'node:perf_hooks';

/** How late the process's event loop ran since the last look: its 99th percentile and worst, in ms. */
export interface LoopDelay {
  p99Ms: number;
  maxMs: number;
}

/**
 * Watches this process's event-loop delay (a 10 ms timer's lateness, as prom-client's
 * nodejs_eventloop_lag_* gauges) for the bench: each `take` answers what was seen since the last.
 */
export function watchLoopDelay(): { take(): LoopDelay } {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  return {
    take() {
      const seen = histogram.count > 0 ? { p99Ms: histogram.percentile(99) / 1e6, maxMs: histogram.max / 1e6 } : { p99Ms: 0, maxMs: 0 };
      histogram.reset();
      return seen;
    },
  };
}
