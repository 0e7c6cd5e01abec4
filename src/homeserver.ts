import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { adminRoutes } from './api/admin/index.js';
import { sharedSecretRegistrationRoutes } from './api/admin/register.js';
import { clientRoutes } from './api/client/index.js';
import { serverKeyRoutes } from './api/key/index.js';
import { threepidPageRoutes } from './api/pages/threepid.js';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config/index.js';
import { createApp, type AppOptions } from './http/app.js';
import { trustProxySetting } from './http/client-address.js';
import { Router } from './http/router.js';
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
  close(): Promise<void>;
}

export interface StartOptions {
  clock?: Clock;
  /** The mail and SMS queue's clock; wall-clock time unless a test steps it. */
  outboxClock?: Clock;
  logger?: Logger;
}

export function createLogger(config: Config): Logger {
  return pino({
    level: config.log_level,
    redact: { paths: ['password', 'new_password', 'access_token', 'refresh_token', '*.password', '*.token', 'headers.authorization'], censor: '<redacted>' },
  // Asynchronous writes: one write per request line would cost more than the request; pino flushes on exit.
  }, pino.destination({ dest: 1, sync: false }));
}

/** Builds the Fastify app for one listener, with every route. */
export function buildApp(services: Services, logger: Logger, trustProxy: AppOptions['trustProxy']): FastifyInstance {
  const routerRef: { router?: Router } = {};
  const app = createApp({ logger, trustProxy, bodyLimit: services.config.max_request_body_size }, (path) => routerRef.router?.pathExists(path) ?? false);
  const router = new Router(app, services.devices, () => services.clock.now());
  routerRef.router = router;
  clientRoutes(router, services);
  serverKeyRoutes(router, services);
  // Release waiting long-poll syncs first, or close would wait out their timeouts.
  app.addHook('preClose', async () => services.notifier.close());
  threepidPageRoutes(router, services);
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
  services.stoppers.push(services.delivery.start(logger));
  services.stoppers.push(startMaintenance(services, logger));
  const apps: FastifyInstance[] = [];
  const urls: string[] = [];
  try {
    for (const listener of config.listeners) {
      const app = buildApp(services, logger, trustProxySetting(listener));
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
  const close = async () => {
    await Promise.all(apps.map((a) => a.close()));
    for (const stop of services.stoppers) await stop();
    await db.close();
  };
  return { services, apps, urls, logger, close };
}
