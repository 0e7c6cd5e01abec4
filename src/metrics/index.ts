import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { systemClock } from '../clock.js';
import { withTimeout } from '../with-timeout.js';
import type { Services } from '../services/index.js';
import type { Db } from '../storage/db.js';

/** Seconds; from a quick request to a long-poll /sync that waits out its 30 s. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** How long a scrape waits for the database's outbox figures before leaving them out. */
const OUTBOX_QUERY_TIMEOUT_MS = 2_000;

/** The label of requests that matched no route (404s, CORS preflights): raw URLs would be unbounded. */
export const UNMATCHED_ROUTE = 'unmatched';

/**
 * Prometheus metrics of one homeserver process (`enable_metrics: true`), in a registry of its own:
 * HTTP requests per route template, the outbox per channel, long-polls waiting, the PostgreSQL pool,
 * and prom-client's process and Node.js metrics (event loop lag included).
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'method' | 'route' | 'code'>;
  private readonly latency: Histogram<'method' | 'route' | 'code'>;

  constructor(services: Services, db: Db) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    this.requests = new Counter({
      name: 'myelin_http_requests_total',
      help: 'HTTP requests answered, by method, route template and status code',
      labelNames: ['method', 'route', 'code'],
      registers,
    });
    this.latency = new Histogram({
      name: 'myelin_http_request_duration_seconds',
      help: 'Time from receiving a request to having answered it, by method, route template and status code',
      labelNames: ['method', 'route', 'code'],
      buckets: LATENCY_BUCKETS,
      registers,
    });

    const outcomes = {
      sent: new Counter({ name: 'myelin_outbox_sent_total', help: 'Messages (mail, SMS) handed to their transport', labelNames: ['channel'], registers }),
      retried: new Counter({ name: 'myelin_outbox_retried_total', help: 'Failed sending attempts that will be tried again', labelNames: ['channel'], registers }),
      failed: new Counter({ name: 'myelin_outbox_failed_total', help: 'Messages given up on (permanent failure or too many attempts)', labelNames: ['channel'], registers }),
    };
    services.delivery.worker.observe((channel, outcome) => outcomes[outcome].inc({ channel }));

    // Read before the outbox query below asks the pool for a connection (collects start in this order).
    const pool = db.pool;
    if (pool) {
      const max = pool.options.max ?? 10;
      const poolGauge = (name: string, help: string, read: () => number) =>
        new Gauge({
          name,
          help,
          registers,
          collect() {
            this.set(read());
          },
        });
      poolGauge('myelin_db_pool_max_connections', 'Largest number of PostgreSQL connections the pool opens (cp_max)', () => max);
      poolGauge('myelin_db_pool_connections', 'PostgreSQL connections open in the pool', () => pool.totalCount);
      poolGauge('myelin_db_pool_idle_connections', 'Open PostgreSQL connections not in use', () => pool.idleCount);
      poolGauge('myelin_db_pool_waiting_queries', 'Queries waiting for a PostgreSQL connection', () => pool.waitingCount);
    }
    /** A counter that reads running totals kept elsewhere at each scrape, one per label value when labelled. */
    const countedFrom = (name: string, help: string, read: () => Record<string, number>, label?: string) => {
      const reported = new Map<string, number>();
      new Counter({
        name,
        help,
        labelNames: label ? [label] : [],
        registers,
        collect() {
          for (const [value, now] of Object.entries(read())) {
            const delta = now - (reported.get(value) ?? 0);
            if (label) this.inc({ [label]: value }, delta);
            else this.inc(delta);
            reported.set(value, now);
          }
        },
      });
    };
    if (db.sqlite) {
      const { counts, lockWaits: waits } = db.sqlite;
      countedFrom('myelin_sqlite_commits_total', 'COMMITs of the SQLite connection (each one group of transactions)', () => ({ all: counts.commits }));
      countedFrom('myelin_sqlite_grouped_transactions_total', 'Transactions committed in those groups', () => ({ all: counts.units }));
      countedFrom('myelin_sqlite_lock_waits_total', "Statements that found another connection (another process, the checkpoint thread) holding SQLite's lock, and waited", () => ({ all: waits.waits }));
      countedFrom('myelin_sqlite_lock_wait_seconds_total', 'Seconds those statements waited, in all', () => ({ all: waits.seconds }));
    }
    const headReads = services.eventCreator.headReads;
    countedFrom('myelin_room_writes_total', "Writes into existing rooms, by where the room's head (state, forward extremity) came from: this process's cache or the database", () => ({ ...headReads }), 'head');

    // Both outbox gauges come from one query, shared by the two collects of one scrape (the
    // registry collects every metric at once).
    const outbox = services.delivery.outbox;
    const repo = services.store.outbox;
    // Messages are stamped with the outbox's clock, which is wall-clock time (services.clock is the one tests move).
    const clock = systemClock;
    let figures: Promise<Map<string, { pending: number; ageSeconds: number }> | undefined> | undefined;
    const outboxFigures = () =>
      (figures ??= (async () => {
        try {
          const rows = await withTimeout(repo.pendingByChannel(), OUTBOX_QUERY_TIMEOUT_MS);
          const now = clock.now();
          const byChannel = new Map(outbox.channels().map((channel) => [channel, { pending: 0, ageSeconds: 0 }]));
          for (const row of rows) byChannel.set(row.channel, { pending: row.pending, ageSeconds: Math.max(0, (now - row.oldestTs) / 1000) });
          return byChannel;
        } catch {
          // The database does not answer: leave the figures out rather than fail the whole scrape.
          return undefined;
        }
      })().finally(() => setImmediate(() => (figures = undefined))));
    const outboxGauge = (name: string, help: string, read: (figure: { pending: number; ageSeconds: number }) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['channel'],
        registers,
        async collect() {
          const byChannel = await outboxFigures();
          this.reset();
          for (const [channel, figure] of byChannel ?? []) this.set({ channel }, read(figure));
        },
      });
    outboxGauge('myelin_outbox_pending', 'Messages waiting to be sent (or being sent), by channel', (f) => f.pending);
    outboxGauge('myelin_outbox_oldest_pending_age_seconds', 'Age of the oldest message waiting to be sent, by channel (0 when none waits)', (f) => f.ageSeconds);

    const notifier = services.notifier;
    new Gauge({
      name: 'myelin_sync_longpolls_waiting',
      help: 'Long-poll /sync requests waiting for something to report',
      registers,
      collect() {
        this.set(notifier.waiting);
      },
    });

  }

  /** Counts and times every request an app answers, by route template (never the raw URL). */
  instrument(app: FastifyInstance): void {
    app.addHook('onResponse', (request, reply, done) => {
      const labels = { method: request.method, route: request.routeOptions.url ?? UNMATCHED_ROUTE, code: reply.statusCode };
      this.requests.inc(labels);
      this.latency.observe(labels, reply.elapsedTime / 1000);
      done();
    });
  }

  /** Serves the metrics in Prometheus' text format at each of `paths`. */
  serve(app: FastifyInstance, paths: readonly string[]): void {
    for (const url of paths) {
      app.get(url, async (_request, reply) => {
        // prom-client writes NaN (e.g. the event loop lag of an interval with no sample) as 'Nan';
        // the exposition format spells it 'NaN'.
        const text = (await this.registry.metrics()).replace(/ Nan$/gm, ' NaN');
        return reply.code(200).header('content-type', this.registry.contentType).header('cache-control', 'no-store').send(text);
      });
    }
  }
}
