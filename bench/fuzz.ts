/**
 * Malformed requests over every route of a fresh Myelin, with GET /versions timed every 50 ms
 * throughout: `npx tsx bench/fuzz.ts --database sqlite|postgres [--requests N] [--seed S]`.
 * Prints the answers per status, every 5xx (or unanswered request) with the request that caused
 * it, and the slowest /versions; exits 1 on any 5xx or a /versions slower than 100 ms.
 */
import { parseArgs } from 'node:util';
import { describeRequest, fuzzEngine } from '../test/helpers/fuzz.js';
import type { Engine } from '../test/helpers/server.js';

const MAX_VERSIONS_MS = 100;

const { values } = parseArgs({
  options: {
    database: { type: 'string', default: 'sqlite' },
    requests: { type: 'string', default: '20000' },
    seed: { type: 'string', default: String(Date.now() % 1_000_000) },
    'max-seconds': { type: 'string', default: '600' },
    concurrency: { type: 'string', default: '8' },
  },
});
if (values.database !== 'sqlite' && values.database !== 'postgres') throw new Error('--database must be sqlite or postgres');
const requests = Number(values.requests);
const seed = Number(values.seed);

const { report, routes, logFile } = await fuzzEngine(values.database as Engine, {
  requests,
  seed,
  maxMs: Number(values['max-seconds']) * 1000,
  concurrency: Number(values.concurrency),
});

console.log(`${values.database}, seed ${seed}: ${report.sent} requests over ${routes.length} routes in ${(report.elapsedMs / 1000).toFixed(1)} s`);
console.log('answers per status:', Object.entries(report.counts).sort(([a], [b]) => Number(a) - Number(b)).map(([s, n]) => `${s}: ${n}`).join(', '));
for (const { request, answer } of report.failures) console.log(`${answer.status} ${answer.body.slice(0, 200)}\n  <- ${describeRequest(request)}`);
console.log(`5xx or no answer: ${report.failures.length}; slowest /versions: ${report.maxVersionsMs.toFixed(1)} ms over ${report.versionsPolls} polls (limit ${MAX_VERSIONS_MS} ms)`);
if (report.failures.length > 0) console.log(`server log: ${logFile}`);
process.exit(report.failures.length > 0 || report.maxVersionsMs > MAX_VERSIONS_MS ? 1 : 0);
