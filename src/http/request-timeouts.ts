import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** An upload: its body is bound by silence (`uploadIdleMs`) rather than by `requestMs` (see requestTimeouts). */
    idleBoundBody?: boolean;
  }
}

/** How long a client may take to send its request. */
export interface RequestTimeouts {
  /** The headers (Node's headersTimeout): a client trickling them (slow-loris) is cut. */
  headersMs: number;
  /** An ordinary request's body, from the end of its headers. */
  requestMs: number;
  /** An upload's body may take as long as it needs (max_upload_size bounds it), but not go this long without a byte. */
  uploadIdleMs: number;
  /** How often Node looks for connections past headersMs (its connectionsCheckingInterval). */
  headersCheckMs: number;
}

export const DEFAULT_REQUEST_TIMEOUTS: RequestTimeouts = { headersMs: 60_000, requestMs: 60_000, uploadIdleMs: 60_000, headersCheckMs: 30_000 };

/** Node's http server options for `timeouts`: its own whole-request limit is off, as requestTimeouts keeps it per route. */
export function httpServerTimeouts(timeouts: RequestTimeouts): { requestTimeout: 0; headersTimeout: number; connectionsCheckingInterval: number } {
  return { requestTimeout: 0, headersTimeout: timeouts.headersMs, connectionsCheckingInterval: timeouts.headersCheckMs };
}

const TIMEOUT_BODY = JSON.stringify({ errcode: 'M_UNKNOWN', error: 'The request took too long to arrive' });
const TIMEOUT_RESPONSE = `HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(TIMEOUT_BODY)}\r\nConnection: close\r\n\r\n${TIMEOUT_BODY}`;

/** As Node does at its requestTimeout: a 408 if nothing was answered yet, and the connection closed. */
function cut(socket: Socket, reply: FastifyReply): void {
  if (!reply.raw.headersSent && socket.writable) socket.write(TIMEOUT_RESPONSE);
  socket.destroy();
}

/**
 * Node's requestTimeout is one limit for the whole server, so a large upload on a slow link would be
 * cut at it. Instead, each request's body gets its own bound once its headers are in: an ordinary
 * request must arrive whole within `requestMs`, while an upload route (config.idleBoundBody) may
 * take as long as it needs provided it never goes `uploadIdleMs` without a byte.
 */
export function requestTimeouts(app: FastifyInstance, timeouts: RequestTimeouts): void {
  app.addHook('onRequest', (request, reply, done) => {
    // Without Content-Length or Transfer-Encoding a request has no body (RFC 9112 §6.3): most GETs,
    // which then need no timer. (`complete` is only set once the parser has seen the end.)
    if (!request.raw.complete && hasBody(request)) {
      if (request.routeOptions.config.idleBoundBody) boundBySilence(request, reply, timeouts.uploadIdleMs);
      else boundByTime(request, reply, timeouts.requestMs);
    }
    done();
  });
}

function hasBody(request: FastifyRequest): boolean {
  const { headers } = request;
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0');
}

function boundByTime(request: FastifyRequest, reply: FastifyReply, ms: number): void {
  const timer = setTimeout(() => {
    if (!request.raw.complete) cut(request.raw.socket, reply);
  }, ms);
  reply.raw.once('close', () => clearTimeout(timer));
}

function boundBySilence(request: FastifyRequest, reply: FastifyReply, ms: number): void {
  const socket = request.raw.socket;
  // Node's own socket timeout handler emits 'timeout' on the request while its body is incomplete.
  const onIdle = () => cut(socket, reply);
  request.raw.once('timeout', onIdle);
  socket.setTimeout(ms);
  // Once the body is in, the connection's usual timeouts (keep-alive) apply again.
  request.raw.once('end', () => {
    request.raw.off('timeout', onIdle);
    socket.setTimeout(0);
  });
}
