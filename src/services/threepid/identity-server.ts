import type { Config } from '../../config/index.js';
import { MatrixError } from '../../errors.js';
import type { JsonSigner } from '../rooms/event-hash.js';
import { xMatrixAuthorization } from '../x-matrix.js';

/** An identity server the admin trusts: where to reach it, and its name (host[:port]), as bindings record it. */
export interface TrustedIdServer {
  baseUrl: string;
  name: string;
}

export const notTrusted = () => new MatrixError(400, 'M_SERVER_NOT_TRUSTED', 'This server does not trust that identity server');

/**
 * The identity server the admin trusts that `idServer` names, or undefined. trusted_third_party_id_servers
 * holds host names (https is assumed) or full base URLs (e.g. http://127.0.0.1:8090 for a local one);
 * `idServer`, as clients send it, is matched against the host[:port] (or the entry as written).
 */
export function trustedIdServer(config: Config, idServer: string): TrustedIdServer | undefined {
  const wanted = idServer.trim().toLowerCase();
  for (const entry of config.trusted_third_party_id_servers) {
    const base = /^https?:\/\//i.test(entry) ? entry : `https://${entry}`;
    let url: URL;
    try {
      url = new URL(base);
    } catch {
      continue;
    }
    if (url.host.toLowerCase() === wanted || entry.toLowerCase() === wanted) return { baseUrl: url.origin, name: url.host.toLowerCase() };
  }
  return undefined;
}

/** The base URL of a trusted identity server, or undefined (see trustedIdServer). */
export function trustedIdServerUrl(config: Config, idServer: string): string | undefined {
  return trustedIdServer(config, idServer)?.baseUrl;
}

/** What an identity server answered: parsed JSON (undefined when the body is not JSON). */
interface IdServerAnswer {
  status: number;
  body: unknown;
}

/** A POST of JSON to an identity server, answer read in full, all within `timeoutMs`; MatrixError 502/504 when it cannot be had. */
async function post(url: string, headers: Record<string, string>, body: unknown, timeoutMs: number): Promise<IdServerAnswer> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await fetch(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body), signal, redirect: 'error' });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: res.status, body: parsed };
  } catch {
    if (signal.aborted) throw new MatrixError(504, 'M_UNKNOWN', 'The identity server did not answer in time');
    throw new MatrixError(502, 'M_UNKNOWN', 'The identity server could not be reached');
  }
}

/** The identity server's Matrix error, as the spec asks it be passed on to the client; else a 502 saying it refused. */
function passedOn(answer: IdServerAnswer): MatrixError {
  const err = answer.body as { errcode?: unknown; error?: unknown } | undefined;
  const isMatrixError = typeof err?.errcode === 'string' && /^[A-Z0-9_.]{1,64}$/i.test(err.errcode);
  const message = typeof err?.error === 'string' ? err.error.slice(0, 500) : 'The identity server refused the request';
  if (!isMatrixError || answer.status < 400 || answer.status >= 500) return new MatrixError(502, 'M_UNKNOWN', message);
  return new MatrixError(answer.status, err.errcode as string, message);
}

/** What an identity server's bind answer says was bound (spec identity service API v2, POST /3pid/bind). */
export interface BoundThreepid {
  medium?: string;
  address?: string;
}

/**
 * POST /_matrix/identity/v2/3pid/bind at a trusted identity server, with the client's access token
 * for it. The identity server's own errors are passed on to the client, as the spec asks.
 */
export async function bindAtIdentityServer(
  server: TrustedIdServer,
  accessToken: string,
  body: { sid: string; client_secret: string; mxid: string },
  timeoutMs: number,
): Promise<BoundThreepid> {
  const answer = await post(`${server.baseUrl}/_matrix/identity/v2/3pid/bind`, { authorization: `Bearer ${accessToken}` }, body, timeoutMs);
  if (answer.status < 200 || answer.status >= 300) throw passedOn(answer);
  const bound = answer.body as { medium?: unknown; address?: unknown } | undefined;
  return {
    ...(typeof bound?.medium === 'string' ? { medium: bound.medium } : {}),
    ...(typeof bound?.address === 'string' ? { address: bound.address } : {}),
  };
}

/** 'success': the identity server unbound it; 'no-support': it said it does not unbind (definitive either way). */
export type UnbindOutcome = 'success' | 'no-support';

export const UNBIND_PATH = '/_matrix/identity/v2/3pid/unbind';

export interface UnbindCall {
  server: TrustedIdServer;
  /** This homeserver's name (X-Matrix origin) and signing key. */
  origin: string;
  key: JsonSigner;
  mxid: string;
  threepid: { medium: string; address: string };
  timeoutMs: number;
}

/**
 * POST /_matrix/identity/v2/3pid/unbind, signed with the server's key (X-Matrix, destination the
 * identity server's name). 400, 404 and 501 mean the identity server does not unbind (the spec's
 * reading without a Matrix error, Synapse's for any body): 'no-support'. Anything else that is not
 * a success throws a MatrixError: the identity server's own error passed on, or 502/504 when it
 * could not be reached or did not answer within `timeoutMs`.
 */
export async function unbindAtIdentityServer(call: UnbindCall): Promise<UnbindOutcome> {
  const content = { mxid: call.mxid, threepid: { medium: call.threepid.medium, address: call.threepid.address } };
  const authorization = xMatrixAuthorization({ method: 'POST', uri: UNBIND_PATH, origin: call.origin, destination: call.server.name, content }, call.key);
  const answer = await post(`${call.server.baseUrl}${UNBIND_PATH}`, { authorization }, content, call.timeoutMs);
  if (answer.status >= 200 && answer.status < 300) return 'success';
  if (answer.status === 400 || answer.status === 404 || answer.status === 501) return 'no-support';
  throw passedOn(answer);
}
