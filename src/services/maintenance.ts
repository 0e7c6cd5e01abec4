import type { Logger } from 'pino';
import type { Services } from './index.js';

const INTERVAL_MS = 10 * 60_000;

/**
 * Periodically deletes expired UIA and 3PID sessions (releasing their registration tokens' pending uses), idle rate-limit
 * buckets, old to-device transaction IDs, media IDs created and never uploaded to, media fetched for URL previews
 * and read notifications past their retention,
 * and takes up profile changes a process that died left part-way. Returns its stopper.
 */
export function startMaintenance(services: Services, logger: Logger): () => Promise<void> {
  const run = async () => {
    try {
      await services.uia.pruneExpired();
      await services.admin.registrationTokens.releaseAbandoned();
      await services.store.rateLimits.prune(services.clock.now());
      await services.threepid.sessions.prune();
      await services.toDevice.prune();
      await services.media.pruneUnused();
      await services.media.pruneUrlCache();
      await services.notifications.prune();
      await services.profilePropagation.takeUpAbandoned();
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'maintenance failed');
    }
  };
  const timer = setInterval(() => void run(), INTERVAL_MS);
  timer.unref();
  return async () => clearInterval(timer);
}
