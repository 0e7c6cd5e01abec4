import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import FindMyWay from 'find-my-way';
import { MatrixError, invalidParam } from '../errors.js';
import type { Requester, DeviceService } from '../services/devices.js';
import type { Admission } from './admission.js';
import { hasNul } from './input-checks.js';
import { HtmlReply, JsonReply, RedirectReply, StreamReply } from './reply.js';

export interface RequestContext {
  /** The parsed JSON body; undefined when the request had none. */
  body: unknown;
  query: Record<string, string | undefined>;
  params: Record<string, string>;
  ip: string;
  headers: IncomingHttpHeaders;
  /** Set when the route authenticates; always set when auth is 'required'. */
  requester?: Requester;
}

export interface AuthedContext extends RequestContext {
  requester: Requester;
}

export type Handler<C extends RequestContext = RequestContext> = (ctx: C) => Promise<unknown>;

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

interface RouteOptions {
  /** Path prefixes to serve under; defaults to the client API's v3 and r0. */
  prefixes?: readonly string[];
  /**
   * The body is not read: `ctx.body` is the request stream, whatever its type and length (uploads,
   * which the handler streams and limits itself). A refusal sent before the whole body arrived
   * closes the connection, rather than reading the rest. The body may take as long as it needs, but
   * not go silent (see request-timeouts).
   */
  streamBody?: boolean;
  /**
   * A costly write that floods can be made of (e.g. a token request that sends mail): its handler
   * waits for a place in the process's admission bound, so cheap requests are not queued behind it.
   */
  costly?: boolean;
}

export const CLIENT_PREFIXES = ['/_matrix/client/v3', '/_matrix/client/r0'] as const;
/** For the few stable endpoints that older clients still call under /unstable (Synapse serves them there). */
export const CLIENT_AND_UNSTABLE_PREFIXES = [...CLIENT_PREFIXES, '/_matrix/client/unstable'] as const;

const MISSING_TOKEN = () => new MatrixError(401, 'M_MISSING_TOKEN', 'Missing access token');

/** Reads the access token from the Authorization header, or the deprecated access_token parameter. */
/** Query parameters, each given at most once: a repeated one is M_INVALID_PARAM, on every endpoint alike. */
function singleValued(query: unknown): Record<string, string | undefined> {
  const values = query as Record<string, string | string[] | undefined>;
  for (const key in values) {
    if (Array.isArray(values[key])) throw new MatrixError(400, 'M_INVALID_PARAM', `Query parameter '${key}' must be given once`);
  }
  return values as Record<string, string | undefined>;
}

export function accessTokenOf(headers: IncomingHttpHeaders, query: Record<string, string | undefined>): string | undefined {
  const header = headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return match?.[1];
  }
  return query.access_token || undefined;
}

/** One registered route: its method and full path (`:name` for parameters) and how it authenticates. */
export interface RouteInfo {
  method: Method;
  path: string;
  auth: 'none' | 'required' | 'optional';
}

const routesByApp = new WeakMap<FastifyInstance, RouteInfo[]>();

/** The Matrix routes registered on an app, in registration order (e.g. for a fuzzer to walk). */
export function routesOf(app: FastifyInstance): readonly RouteInfo[] {
  return routesByApp.get(app) ?? [];
}

/**
 * Registers Matrix routes on one Fastify app: every path under each prefix, with authentication,
 * and a record of known paths so a wrong method gets 405 rather than 404.
 */
export class Router {
  private readonly known = FindMyWay();
  private readonly lastTouch = new Map<string, number>();
  private readonly routes: RouteInfo[] = [];

  constructor(
    private readonly app: FastifyInstance,
    private readonly devices: DeviceService,
    private readonly now: () => number,
    private readonly admission?: Admission,
  ) {
    routesByApp.set(app, this.routes);
  }

  /** True when some method serves this path. */
  pathExists(path: string): boolean {
    return this.known.find('GET', path) !== null;
  }

  public(method: Method, path: string, handler: Handler, options: RouteOptions = {}): void {
    this.add(method, path, 'none', handler as Handler, options);
  }

  authed(method: Method, path: string, handler: Handler<AuthedContext>, options: RouteOptions = {}): void {
    this.add(method, path, 'required', handler as Handler, options);
  }

  /** A route that works with or without an access token (e.g. password reset vs. change). */
  optionallyAuthed(method: Method, path: string, handler: Handler, options: RouteOptions = {}): void {
    this.add(method, path, 'optional', handler, options);
  }

  private add(method: Method, path: string, auth: 'none' | 'required' | 'optional', handler: Handler, options: RouteOptions): void {
    for (const prefix of options.prefixes ?? CLIENT_PREFIXES) {
      const url = prefix + path;
      if (this.known.find('GET', url) === null) this.known.on('GET', url, () => undefined);
      this.routes.push({ method, path: url, auth });
      const route = {
        method: method as HTTPMethods,
        url,
        handler: async (request: FastifyRequest, reply: FastifyReply) => {
          const ctx: RequestContext = {
            body: request.body,
            query: singleValued(request.query),
            params: request.params as Record<string, string>,
            ip: request.ip,
            headers: request.headers,
          };
          // Parameters are decoded by now, and a URL can only carry U+0000 as %00 (the access_token parameter too).
          if (request.url.includes('%00') && (hasNul(Object.entries(ctx.params)) || hasNul(Object.entries(ctx.query)))) {
            throw invalidParam('Parameters may not contain U+0000');
          }
          if (auth !== 'none') {
            const token = accessTokenOf(request.headers, ctx.query);
            if (token) {
              ctx.requester = await this.devices.authenticate(token);
              this.touch(ctx.requester, ctx.ip);
            } else if (auth === 'required' || request.headers.authorization !== undefined) {
              throw MISSING_TOKEN();
            }
          }
          const admission = options.costly ? this.admission : undefined;
          return send(reply, await (admission ? admission.run(() => handler(ctx)) : handler(ctx)));
        },
      };
      if (options.streamBody) this.app.register(async (child) => streamBodyRoute(child, route));
      else this.app.route(route);
    }
  }

  /** Records when a device was last seen, at most every few minutes per token. */
  private touch(requester: Requester, ip: string): void {
    const now = this.now();
    const last = this.lastTouch.get(requester.tokenHash);
    if (last !== undefined && now - last < 300_000) return;
    if (this.lastTouch.size > 100_000) this.lastTouch.clear();
    this.lastTouch.set(requester.tokenHash, now);
    this.devices.touchDevice(requester, now, ip).catch(() => undefined);
  }
}

/** Registers `route` in its own context, where the body is handed over unread (see RouteOptions.streamBody). */
function streamBodyRoute(child: FastifyInstance, route: { method: HTTPMethods; url: string; handler: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown> }): void {
  child.removeAllContentTypeParsers();
  child.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
  const handler = route.handler;
  child.route({
    ...route,
    config: { idleBoundBody: true },
    handler: async (request, reply) => {
      try {
        return await handler(request, reply);
      } catch (err) {
        if (!request.raw.complete) reply.header('connection', 'close');
        throw err;
      }
    },
  });
}

const PAGE_HEADERS = {
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'",
};

export function send(reply: FastifyReply, result: unknown): FastifyReply {
  if (result instanceof JsonReply) return reply.code(result.status).headers(result.headers).send(result.body);
  if (result instanceof HtmlReply) {
    return reply.code(result.status).headers({ ...PAGE_HEADERS, ...result.headers }).type('text/html; charset=utf-8').send(result.html);
  }
  if (result instanceof StreamReply) return reply.code(result.status).headers(result.headers).send(result.stream);
  if (result instanceof RedirectReply) return reply.headers(PAGE_HEADERS).redirect(result.location, 302);
  return reply.code(200).send(result ?? {});
}
