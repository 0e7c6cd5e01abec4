import type { LoopDelay } from './loop-delay.js';

/** One benchmarked endpoint's figures (medians over the rounds). */
export interface Row {
  name: string;
  rps: number;
  rpsPerRound: number[];
  p50: number;
  p99: number;
  /** Requests/s as a fraction of the bare server's. */
  ratio: number;
  /** CPU time (user + system) of the server process per request, in microseconds. */
  cpuPerRequestUs: number;
  /** The bare server's CPU per request divided by this one's: the throughput ratio on an otherwise idle core. */
  cpuRatio: number;
  /** CPU time of the PostgreSQL backends serving the server per request, in microseconds (with --database postgres). */
  pgCpuPerRequestUs?: number;
  total: number;
  non2xx: number;
  errors: number;
  note?: string;
  /** The light load run beside this case (medians over the rounds), if it had one. */
  alongside?: { name: string; connections: number; rate: number; rps: number; p50: number; p99: number; p99PerRound: number[]; non2xx: number; errors: number };
  /** The one-minute load average at the start and end of each round's run. */
  loadPerRound: { before: number; after: number }[];
  /** The server's event-loop delay in each round's run (p99 and worst, ms). */
  loopPerRound?: LoopDelay[];
}

/** Each case's server event-loop delay, per round: how long a request could wait for the loop. */
export function formatLoopDelays(rows: Row[]): string {
  const lines = rows.flatMap((r) => (r.loopPerRound ? [`  ${r.name}: ${r.loopPerRound.map((l) => `${l.p99Ms.toFixed(0)} / ${l.maxMs.toFixed(0)}`).join(', ')}`] : []));
  return lines.length === 0 ? '' : ['', 'Event-loop delay of the server during each round, p99 / worst in ms (a 10 ms timer\'s lateness):', ...lines].join('\n');
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

const percent = (x: number) => `${(x * 100).toFixed(1)}%`;

/** A Markdown table of the results, readable as plain text too. */
export function formatTable(rows: Row[]): string {
  const header = ['Endpoint', 'req/s', 'vs bare', 'p50 ms', 'p99 ms', 'CPU µs/req', 'vs bare (CPU)', 'req/s per round', 'non-2xx', 'errors'];
  const cells = rows.map((r) => [
    r.name,
    r.rps.toFixed(0),
    percent(r.ratio),
    r.p50.toFixed(0),
    r.p99.toFixed(0),
    r.cpuPerRequestUs.toFixed(0),
    percent(r.cpuRatio),
    r.rpsPerRound.join(' / '),
    String(r.non2xx),
    String(r.errors),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => `| ${c.map((s, i) => (i > 0 ? s.padStart(widths[i]!) : s.padEnd(widths[i]!))).join(' | ')} |`;
  const sep = `|${widths.map((w, i) => (i > 0 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  const notes = rows.filter((r) => r.note).map((r) => `- ${r.name}: ${r.note}`);
  return [line(header), sep, ...cells.map(line), ...(notes.length ? ['', ...notes] : [])].join('\n');
}
