import Fastify, { type FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { adminRoutes } from './api/admin/index.js';
import { sharedSecretRegistrationRoutes } from './api/admin/register.js';
import { healthRoutes } from './api/health.js';
import { clientRoutes } from './api/client/index.js';
import { serverKeyRoutes } from './api/key/index.js';
import { thirdPartyBindRoutes } from './api/client/rooms.js';
import { mediaRoutes } from './api/media/index.js';
import { threepidPageRoutes } from './api/pages/threepid.js';
import { unsubscribeRoutes } from './api/pages/unsubscribe.js';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config/index.js';
import { createApp, requestsInFlight, type AppOptions } from './http/app.js';
import { trustProxySetting } from './http/client-address.js';
import type { RequestTimeouts } from './http/request-timeouts.js';
import { Router } from './http/router.js';
import type { Metrics } from './metrics/index.js';
import { createServices, type Services } from './services/index.js';
import { startMaintenance } from './services/maintenance.js';
import { SharedSecretRegistration } from './services/shared-secret-registration.js';
import { openDb } from './storage/db.js';

export interface Homeserver {
  services: Services;
  apps: FastifyInstance[];
  /** The base URL of each listener, in config order, once listening. */
  urls: string[];
  logger: Logger;
  /** Set when `enable_metrics` is on. */
  metrics?: Metrics;
  /**
   * Graceful shutdown: stops accepting connections, answers waiting long-polls at once, lets
   * requests in flight finish (cutting what is left after `graceMs`), lets the outbox record the
   * sends in flight, then closes the database.
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

/** How long requests in flight get to finish at shutdown (below `docker stop`'s 10 s). */
export const SHUTDOWN_GRACE_MS = 5_000;
/** How long the sends in flight get to be recorded at shutdown; after that their lease brings them back. */
const OUTBOX_STOP_GRACE_MS = 3_000;

/** Where a listener that serves metrics answers: Synapse's path, and /metrics on a metrics-only listener. */
const METRICS_PATH = '/_synapse/metrics';

export interface StartOptions {
  clock?: Clock;
  /** The mail and SMS queue's clock; wall-clock time unless a test steps it. */
  outboxClock?: Clock;
  logger?: Logger;
  /** Shorter limits on how long clients may take to send requests (tests). */
  timeouts?: RequestTimeouts;
}

export function createLogger(config: Config): Logger {
  return pino({
    level: config.log_level,
    redact: { paths: ['password', 'new_password', 'access_token', 'refresh_token', '*.password', '*.token', 'headers.authorization'], censor: '<redacted>' },
  // Asynchronous writes: one write per request line would cost more than the request; pino flushes on exit.
  }, pino.destination({ dest: 1, sync: false }));
}

/** Builds the Fastify app for one listener, with every route. */
export function buildApp(services: Services, logger: Logger, trustProxy: AppOptions['trustProxy'], metrics?: Metrics, timeouts?: RequestTimeouts): FastifyInstance {
  const routerRef: { router?: Router } = {};
  const app = createApp({ logger, trustProxy, bodyLimit: services.config.max_request_body_size, timeouts }, (path) => routerRef.router?.pathExists(path) ?? false);
  metrics?.instrument(app);
  healthRoutes(app, services.store.db.kysely);
  const router = new Router(app, services.devices, () => services.clock.now(), services.admission);
  routerRef.router = router;
  clientRoutes(router, services);
  serverKeyRoutes(router, services);
  thirdPartyBindRoutes(router, services);
  mediaRoutes(router, services);
  // Release waiting long-poll syncs first, or close would wait out their timeouts.
  app.addHook('preClose', async () => services.notifier.close());
  threepidPageRoutes(router, services);
  unsubscribeRoutes(router, services);
  const { config, store, accounts, clock } = services;
  sharedSecretRegistrationRoutes(router, new SharedSecretRegistration(config, store.uia, accounts, clock));
  adminRoutes(router, services);
  return app;
}

/** Opens the database, wires the services and starts every listener. */
export async function startHomeserver(config: Config, options: StartOptions = {}): Promise<Homeserver> {
  const logger = options.logger ?? createLogger(config);
  const db = await openDb(config.database);
  let services: Services;
  try {
    services = createServices(config, db, options.clock ?? systemClock, options.outboxClock);
    void services.signingKey; // read (or make) the signing key now: a bad key file is a start-up error
  } catch (err) {
    await db.close(); // e.g. a malformed signing key file: a start-up error, not a leaked database
    throw err;
  }
  // prom-client is loaded only when metrics are on.
  const metrics = config.enable_metrics ? new (await import('./metrics/index.js')).Metrics(services, db) : undefined;
  services.stoppers.push(services.delivery.start(logger));
  services.stoppers.push(services.push.start(logger));
  if (services.emailNotifs) services.stoppers.push(services.emailNotifs.notifier.start(logger));
  services.stoppers.push(startMaintenance(services, logger));
  services.stoppers.push(services.typing.start(logger));
  services.upgradeUserState.logger = logger;
  // Stopped first: a room write it is finishing still wakes syncs and push evaluation.
  services.stoppers.unshift(services.profilePropagation.start(logger));
  const apps: FastifyInstance[] = [];
  const urls: string[] = [];
  try {
    for (const listener of config.listeners) {
      const servesMetrics = listener.type === 'metrics' || (listener.resources ?? []).some((r) => r.names.includes('metrics'));
      if (servesMetrics && !metrics) logger.warn({ port: listener.port }, 'a listener serves metrics, but enable_metrics is not true: no metrics are served');
      let app: FastifyInstance;
      if (listener.type === 'metrics') {
        if (!metrics) continue;
        app = metricsApp(logger);
        metrics.serve(app, [METRICS_PATH, '/metrics']);
      } else {
        app = buildApp(services, logger, trustProxySetting(listener), metrics, options.timeouts);
        if (servesMetrics && metrics) metrics.serve(app, [METRICS_PATH]);
      }
      apps.push(app);
      for (const host of listener.bind_addresses) {
        const address = await app.listen({ port: listener.port, host });
        urls.push(address.replace('[::1]', '127.0.0.1'));
      }
    }
  } catch (err) {
    await Promise.all(apps.map((a) => a.close()));
    await db.close();
    throw err;
  }
  let closed: Promise<void> | undefined;
  const close = ({ graceMs = SHUTDOWN_GRACE_MS }: { graceMs?: number } = {}) =>
    (closed ??= (async () => {
      await Promise.all(apps.map((app) => closeApp(app, graceMs, logger)));
      await services.delivery.worker.stop(OUTBOX_STOP_GRACE_MS);
      for (const stop of services.stoppers) await stop();
      await db.close();
    })());
  return { services, apps, urls, logger, metrics, close };
}

/** A `type: metrics` listener's app: nothing but the metrics (and 404 for anything else). */
function metricsApp(logger: Logger): FastifyInstance {
  return Fastify({ loggerInstance: logger, disableRequestLogging: true, return503OnClosing: true }) as unknown as FastifyInstance;
}

/**
 * Closes one listener: no new connections, 503 for new requests on open ones, waiting long-polls
 * answered (the notifier's preClose hook), requests in flight finished, each connection closed once
 * idle. Once none is in flight, what is left (connections opened without a request yet, which
 * server.close() would wait for) is closed; after `graceMs` whatever is still open is cut.
 */
async function closeApp(app: FastifyInstance, graceMs: number, logger: Logger): Promise<void> {
  let done = false;
  let cut = false;
  const closing = app.close().then(() => void (done = true));
  const started = Date.now();
  while (!done) {
    if (requestsInFlight(app) === 0) {
      app.server.closeAllConnections();
    } else if (Date.now() - started < graceMs) {
      // A kept-alive connection whose request is answered would otherwise wait for the others.
      app.server.closeIdleConnections();
    } else if (Date.now() - started >= graceMs) {
      if (!cut) logger.warn({ grace_ms: graceMs, in_flight: requestsInFlight(app) }, 'requests still in flight at the end of the shutdown grace period: closing their connections');
      cut = true;
      app.server.closeAllConnections();
    }
    await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 20))]);
  }
}
