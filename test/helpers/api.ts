import { Agent, getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import { validateResponse } from './openapi.js';

/**
 * Makes fetch open new connections from now on; the kept-alive ones are closed once their requests
 * are answered. Call it after restarting a server on the same port: a pooled socket whose close the
 * event loop has not seen yet would otherwise carry the next request to the closed server, which
 * fails as "fetch failed".
 */
export function freshConnections(): void {
  const old = getGlobalDispatcher();
  setGlobalDispatcher(new Agent());
  void old.close();
}

export interface ApiResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

export interface RequestOptions {
  token?: string;
  headers?: Record<string, string>;
  /** Send this text (or these bytes) as the body instead of JSON-encoding `body`. */
  rawBody?: string | Uint8Array<ArrayBuffer>;
  /** The test provokes a server error on purpose: a 5xx with a Matrix error body passes the spec check. */
  expectServerError?: boolean;
}

/**
 * A small HTTP client for tests. Paths may be short ('/v3/login' means '/_matrix/client/v3/login').
 * Every JSON answer is checked against the spec's schema for its endpoint and status.
 */
export class Api {
  constructor(readonly baseUrl: string) {}

  static fullPath(path: string): string {
    return path.startsWith('/_') || path.startsWith('/.well-known') ? path : `/_matrix/client${path}`;
  }

  async request<T = Record<string, unknown>>(method: string, path: string, body?: unknown, options: RequestOptions = {}): Promise<ApiResponse<T>> {
    const full = Api.fullPath(path);
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let payload: string | Uint8Array<ArrayBuffer> | undefined = options.rawBody;
    if (payload === undefined && body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(this.baseUrl + full, { method, headers, body: payload, redirect: 'manual' });
    const text = await res.text();
    let parsed: unknown = text;
    if ((res.headers.get('content-type') ?? '').includes('application/json') && text !== '') {
      parsed = JSON.parse(text);
      await validateResponse(method, full, res.status, parsed, { serverError: options.expectServerError === true });
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  }

  get<T = Record<string, unknown>>(path: string, options?: RequestOptions) {
    return this.request<T>('GET', path, undefined, options);
  }
  post<T = Record<string, unknown>>(path: string, body?: unknown, options?: RequestOptions) {
    return this.request<T>('POST', path, body, options);
  }
  put<T = Record<string, unknown>>(path: string, body?: unknown, options?: RequestOptions) {
    return this.request<T>('PUT', path, body, options);
  }
  delete<T = Record<string, unknown>>(path: string, body?: unknown, options?: RequestOptions) {
    return this.request<T>('DELETE', path, body, options);
  }

  /** Registers through the m.login.dummy flow and returns the new session. */
  async register(username: string, password = 'correct horse battery', extra: Record<string, unknown> = {}) {
    const first = await this.post('/v3/register', { username, password, ...extra });
    if (first.status !== 401) throw new Error(`register ${username}: expected 401, got ${first.status} ${JSON.stringify(first.body)}`);
    const res = await this.post<{ user_id: string; access_token: string; device_id: string }>('/v3/register', {
      username,
      password,
      ...extra,
      auth: { type: 'm.login.dummy', session: first.body.session },
    });
    if (res.status !== 200) throw new Error(`register ${username}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  /** Logs in with a password and returns the new session. */
  async login(user: string, password = 'correct horse battery') {
    const res = await this.post<{ user_id: string; access_token: string; device_id: string }>('/v3/login', {
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user },
      password,
    });
    if (res.status !== 200) throw new Error(`login ${user}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }
}
