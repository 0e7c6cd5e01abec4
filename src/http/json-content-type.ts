import type { FastifyInstance } from 'fastify';

const FASTIFY_JSON = 'application/json; charset=utf-8';

/**
 * Answers JSON as `Content-Type: application/json`, as Synapse does and the spec's API lists it.
 * Fastify appends `charset=utf-8`, a parameter that RFC 8259 does not define for application/json
 * (JSON is UTF-8). One comparison per answer, on every JSON answer: results, errors, 404 and 405.
 */
export function plainJsonContentType(app: FastifyInstance): void {
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (reply.getHeader('content-type') === FASTIFY_JSON) reply.header('content-type', 'application/json');
    done(null, payload);
  });
}
