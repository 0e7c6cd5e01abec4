import { randomBytes } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { MatrixError, invalidParam, notJson, unrecognized } from '../errors.js';
import { isDatabaseBusy } from '../storage/sqlite-busy.js';
import { FormBody } from './form.js';
import { checkJsonBody, hasNul } from './input-checks.js';
import { plainJsonContentType } from './json-content-type.js';
import { redactUrl } from './redact.js';
import { DEFAULT_REQUEST_TIMEOUTS, httpServerTimeouts, requestTimeouts, type RequestTimeouts } from './request-timeouts.js';

export interface AppOptions {
  logger: FastifyBaseLogger;
  /** Fastify's trustProxy: false, or the proxies' addresses and ranges (trustProxySetting). */
  trustProxy: false | string[];
  bodyLimit: number;
  /** How long clients may take to send requests; DEFAULT_REQUEST_TIMEOUTS unless a test shortens them. */
  timeouts?: RequestTimeouts;
}

type FastifyReplyLike = {
  code(n: number): FastifyReplyLike;
  headers(h: Record<string, string>): FastifyReplyLike;
  serializer(fn: (payload: unknown) => string): FastifyReplyLike;
  send(b: unknown): unknown;
};

/**
 * Request IDs: this process's random prefix (several processes may log to one place) and a counter.
 * Each request's log lines carry it as `request_id`, and its answer as `X-Request-Id`, so a person
 * can quote it to an admin, who finds the request in the log.
 */
const PROCESS_PREFIX = randomBytes(4).toString('hex');
let requestCounter = 0;
const nextRequestId = () => `${PROCESS_PREFIX}-${(++requestCounter).toString(36)}`;

/** Requests each app has received and not yet answered (or lost to their client), for shutdown. */
const inFlightByApp = new WeakMap<object, { count: number }>();

/** How many requests `app` is working on now; at shutdown, once none is, what is left open is idle. */
export function requestsInFlight(app: FastifyInstance): number {
  return inFlightByApp.get(app)?.count ?? 0;
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

const CORS_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, HEAD, POST, PUT, DELETE, OPTIONS',
  'access-control-allow-headers': 'X-Requested-With, Content-Type, Authorization, Date',
  'access-control-expose-headers': 'Retry-After',
};

function matrixErrorOf(err: FastifyError | Error): MatrixError {
  if (err instanceof MatrixError) return err;
  const code = (err as FastifyError).code;
  const status = (err as FastifyError).statusCode;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new MatrixError(413, 'M_TOO_LARGE', 'Request body is too large');
  if (code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH') return new MatrixError(400, 'M_BAD_JSON', 'Content-Length does not match the body');
  if (status !== undefined && status >= 400 && status < 500) return new MatrixError(status, 'M_UNKNOWN', 'Bad request');
  // Another process held SQLite's lock past the wait: nothing was written, and trying later will do.
  if (isDatabaseBusy(err)) return new MatrixError(503, 'M_UNKNOWN', 'The database is busy; try again', {}, { 'Retry-After': '1' });
  return new MatrixError(500, 'M_UNKNOWN', 'Internal server error');
}

/**
 * The Fastify app with Matrix conventions: JSON bodies whatever the content type, Matrix error
 * bodies for every failure, CORS on every answer, 404 and 405 as M_UNRECOGNIZED.
 */
export function createApp(options: AppOptions, pathExists: (path: string) => boolean): FastifyInstance {
  const timeouts = options.timeouts ?? DEFAULT_REQUEST_TIMEOUTS;
  const app = Fastify({
    loggerInstance: options.logger,
    trustProxy: options.trustProxy,
    bodyLimit: options.bodyLimit,
    // Fastify's own request lines would log raw URLs (and tokens in them); onResponse logs a redacted one.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    genReqId: nextRequestId,
    // Once closing, requests arriving on open connections get 503 (and Connection: close); those in
    // flight are finished, within the homeserver's shutdown grace period (homeserver.ts closeApp).
    return503OnClosing: true,
    // A client that trickles its request (headers and body) is cut off rather than held forever:
    // headers by Node, bodies per route by requestTimeouts (uploads may be slow, not silent).
    http: httpServerTimeouts(timeouts),
    // Not true: that would cut requests in flight. Idle connections are closed by server.close().
    forceCloseConnections: false,
    frameworkErrors: (_error, _req, reply) => {
      // No hooks run for this answer: its own serializer keeps Fastify from adding a charset (see plainJsonContentType).
      void (reply as FastifyReplyLike)
        .code(400)
        .headers({ ...CORS_HEADERS, 'content-type': 'application/json' })
        .serializer(JSON.stringify)
        .send({ errcode: 'M_UNRECOGNIZED', error: 'Malformed request URL' } as never);
    },
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => {
    // Decoded strictly: Buffer#toString would turn invalid UTF-8 into U+FFFD and store mangled text.
    let text: string;
    try {
      text = STRICT_UTF8.decode(body as Buffer);
    } catch {
      return done(notJson('The body is not valid UTF-8'), undefined);
    }
    if (text.trim() === '') return done(null, undefined);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      // A browser form (the pages mailed links open); JSON endpoints do not accept it.
      if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) return done(notJson(), undefined);
      const fields = new URLSearchParams(text);
      if (hasNul(fields)) return done(invalidParam('Form fields may not contain U+0000'), undefined);
      return done(null, new FormBody(fields));
    }
    const refusal = checkJsonBody(parsed, text);
    if (refusal) done(refusal, undefined);
    else done(null, parsed);
  });

  const inFlight = { count: 0 };
  inFlightByApp.set(app, inFlight);
  const settled = () => void inFlight.count--;

  // Callback-style hooks: every request runs them, and async ones cost a promise and a tick each.
  app.addHook('onRequest', (request, reply, done) => {
    inFlight.count++;
    // 'close' comes once the answer is sent, or when the client went away first.
    reply.raw.once('close', settled);
    reply.headers(CORS_HEADERS).header('x-request-id', request.id);
    if (request.method === 'OPTIONS') void reply.code(204).send();
    else done();
  });

  requestTimeouts(app, timeouts);
  plainJsonContentType(app);

  app.addHook('onResponse', (request, reply, done) => {
    request.log.info({ method: request.method, url: redactUrl(request.url), status: reply.statusCode, ip: request.ip, ms: Math.round(reply.elapsedTime) }, 'request');
    done();
  });

  app.setErrorHandler((err: Error, request, reply) => {
    const matrix = matrixErrorOf(err);
    if (matrix.status >= 500) request.log.error({ err: { message: err.message, stack: err.stack }, url: redactUrl(request.url) }, 'request failed');
    return reply.code(matrix.status).headers(matrix.headers).send(matrix.body());
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const error = pathExists(path) ? unrecognized(405, 'Method not allowed') : unrecognized(404);
    return reply.code(error.status).send(error.body());
  });

  return app as unknown as FastifyInstance;
}
