import { createHash } from 'node:crypto';
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

/** A request to an identity server, answer read in full as JSON, all within `timeoutMs`; MatrixError 502/504 when it cannot be had. */
async function call(method: 'GET' | 'POST', url: string, headers: Record<string, string>, body: unknown, timeoutMs: number): Promise<IdServerAnswer> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const init: RequestInit = { method, headers, signal, redirect: 'error' };
    if (method === 'POST') {
      init.headers = { ...headers, 'content-type': 'application/json' };
      init.body = JSON.stringify(body);
    }
    const res = await fetch(url, init);
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

const post = (url: string, headers: Record<string, string>, body: unknown, timeoutMs: number) => call('POST', url, headers, body, timeoutMs);

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

/**
 * The Matrix user ID an identity server has bound this 3PID to, or undefined (identity service API
 * v2: GET /hash_details, then POST /lookup, hashed with sha256 and the server's pepper when it
 * offers that, else in the clear when it offers only `none`). The identity server's errors are
 * passed on.
 */
export async function lookupAtIdentityServer(server: TrustedIdServer, accessToken: string, threepid: { medium: string; address: string }, timeoutMs: number): Promise<string | undefined> {
  const authorization = `Bearer ${accessToken}`;
  const details = await call('GET', `${server.baseUrl}/_matrix/identity/v2/hash_details`, { authorization }, undefined, timeoutMs);
  if (details.status !== 200) throw passedOn(details);
  const { algorithms, lookup_pepper: pepper } = (details.body ?? {}) as { algorithms?: unknown; lookup_pepper?: unknown };
  if (!Array.isArray(algorithms) || typeof pepper !== 'string') throw new MatrixError(502, 'M_UNKNOWN', 'The identity server gave no lookup algorithms');
  let algorithm: string;
  let address: string;
  if (algorithms.includes('sha256')) {
    algorithm = 'sha256';
    address = createHash('sha256').update(`${threepid.address} ${threepid.medium} ${pepper}`).digest('base64url');
  } else if (algorithms.includes('none')) {
    algorithm = 'none';
    address = `${threepid.address} ${threepid.medium}`;
  } else {
    throw new MatrixError(502, 'M_UNKNOWN', 'The identity server offers no lookup algorithm this server knows');
  }
  const answer = await post(`${server.baseUrl}/_matrix/identity/v2/lookup`, { authorization }, { addresses: [address], algorithm, pepper }, timeoutMs);
  if (answer.status !== 200) throw passedOn(answer);
  const mappings = (answer.body as { mappings?: unknown } | undefined)?.mappings;
  const mxid = mappings !== null && typeof mappings === 'object' ? (mappings as Record<string, unknown>)[address] : undefined;
  return typeof mxid === 'string' ? mxid : undefined;
}

/** What an identity server answers to store-invite: the token, a redacted display name, and the keys that will sign the proof. */
export interface StoredInvite {
  token: string;
  display_name: string;
  public_keys: { public_key: string; key_validity_url: string }[];
}

/** The token the spec allows an identity server to give (identity service API, store-invite). */
const INVITE_TOKEN = /^[0-9a-zA-Z.=_-]{1,255}$/;

/**
 * POST /_matrix/identity/v2/store-invite: the identity server keeps the invitation until the address
 * is bound (and tells its owner). Its errors are passed on; an answer without a usable token or
 * keys is a 502.
 */
export async function storeInviteAtIdentityServer(server: TrustedIdServer, accessToken: string, invite: Record<string, string>, timeoutMs: number): Promise<StoredInvite> {
  const answer = await post(`${server.baseUrl}/_matrix/identity/v2/store-invite`, { authorization: `Bearer ${accessToken}` }, invite, timeoutMs);
  if (answer.status < 200 || answer.status >= 300) throw passedOn(answer);
  const body = (answer.body ?? {}) as { token?: unknown; display_name?: unknown; public_keys?: unknown };
  const keys = Array.isArray(body.public_keys) ? body.public_keys : [];
  const publicKeys = keys.flatMap((k: unknown) => {
    const key = k as { public_key?: unknown; key_validity_url?: unknown } | null;
    return typeof key?.public_key === 'string' && typeof key.key_validity_url === 'string' ? [{ public_key: key.public_key, key_validity_url: key.key_validity_url }] : [];
  });
  if (typeof body.token !== 'string' || !INVITE_TOKEN.test(body.token) || publicKeys.length === 0) {
    throw new MatrixError(502, 'M_UNKNOWN', 'The identity server did not give a usable invitation token and keys');
  }
  return { token: body.token, display_name: typeof body.display_name === 'string' ? body.display_name : '', public_keys: publicKeys };
}

/** Whether the identity server still vouches for a public key (GET key_validity_url?public_key=): false for anything but `{"valid": true}`. */
export async function keyIsValid(keyValidityUrl: string, publicKey: string, timeoutMs: number): Promise<boolean> {
  const url = new URL(keyValidityUrl);
  url.searchParams.set('public_key', publicKey);
  const answer = await call('GET', url.toString(), {}, undefined, timeoutMs);
  return answer.status === 200 && (answer.body as { valid?: unknown } | undefined)?.valid === true;
}
