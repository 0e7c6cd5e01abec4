import type { Config } from '../../config/index.js';
import { MatrixError } from '../../errors.js';

const TIMEOUT_MS = 10_000;

/**
 * The base URL of an identity server the admin trusts, or undefined. trusted_third_party_id_servers
 * holds host names (https is assumed) or full base URLs (e.g. http://127.0.0.1:8090 for a local one);
 * `idServer`, as clients send it, is matched against the host[:port].
 */
export function trustedIdServerUrl(config: Config, idServer: string): string | undefined {
  const wanted = idServer.trim().toLowerCase();
  for (const entry of config.trusted_third_party_id_servers) {
    const base = /^https?:\/\//i.test(entry) ? entry : `https://${entry}`;
    let url: URL;
    try {
      url = new URL(base);
    } catch {
      continue;
    }
    if (url.host.toLowerCase() === wanted || entry.toLowerCase() === wanted) return url.origin;
  }
  return undefined;
}

/**
 * POST /_matrix/identity/v2/3pid/bind at a trusted identity server, with the client's access token
 * for it. The identity server's own errors are passed on to the client, as the spec asks.
 */
export async function bindAtIdentityServer(baseUrl: string, accessToken: string, body: { sid: string; client_secret: string; mxid: string }): Promise<void> {
  let res: Response;
  try {
    res = await fetch(`${baseUrl}/_matrix/identity/v2/3pid/bind`, {
      method: 'POST',
      headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(TIMEOUT_MS),
      redirect: 'error',
    });
  } catch {
    throw new MatrixError(502, 'M_UNKNOWN', 'The identity server could not be reached');
  }
  if (res.ok) return;
  let parsed: unknown;
  try {
    parsed = await res.json();
  } catch {
    parsed = undefined;
  }
  const err = parsed as { errcode?: unknown; error?: unknown } | undefined;
  const errcode = typeof err?.errcode === 'string' && /^[A-Z0-9_.]{1,64}$/i.test(err.errcode) ? err.errcode : 'M_UNKNOWN';
  const message = typeof err?.error === 'string' ? err.error.slice(0, 500) : 'The identity server refused the request';
  const status = res.status >= 400 && res.status < 500 ? res.status : 502;
  throw new MatrixError(status, errcode, message);
}
