import type { FastifyInstance } from 'fastify';
import { sql, type Kysely } from 'kysely';
import { withTimeout } from '../with-timeout.js';
import type { Database } from '../storage/schema.js';

/** How long the database gets to answer `select 1` before the homeserver counts as unhealthy. */
export const HEALTH_QUERY_TIMEOUT_MS = 2_000;

/** True when the database answers a trivial query within `timeoutMs`. */
export async function databaseAnswers(db: Kysely<Database>, timeoutMs = HEALTH_QUERY_TIMEOUT_MS): Promise<boolean> {
  try {
    await withTimeout(sql`select 1`.execute(db), timeoutMs);
    return true;
  } catch {
    return false;
  }
}

/**
 * `GET /health`, as Synapse serves it on its client listener for load balancers and container
 * health checks: 200 `OK` when the database answers, else 503. No Matrix error body: probes read the
 * status code.
 */
export function healthRoutes(app: FastifyInstance, db: Kysely<Database>): void {
  app.get('/health', async (_request, reply) => {
    const healthy = await databaseAnswers(db);
    return reply
      .code(healthy ? 200 : 503)
      .header('content-type', 'text/plain; charset=utf-8')
      .header('cache-control', 'no-store')
      .send(healthy ? 'OK' : 'Database unavailable');
  });
}
