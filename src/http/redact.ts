/** Query parameters whose values are secrets, compared after decoding the name and lowercasing it. */
const SECRET_PARAMS = new Set(['access_token', 'token', 'client_secret', 'sid', 'refresh_token', 'password', 'nonce', 'mac']);

/**
 * A URL fit for the logs: the values of parameters that carry secrets are replaced.
 *
 * Names are matched as the server reads them, after percent-decoding (and '+' as a space), so
 * `access%5ftoken` (which Fastify's parser decodes to, and authenticates as, `access_token`) is
 * redacted like the plain spelling; matching is also case-insensitive. Refusing percent-encoded
 * names instead would be a second rule at the edge for no gain, since decoding here covers every
 * spelling. The query is split where the router splits it (the first '?' or '#') and parameters at
 * '&', exactly as the parser does, so a '+', '%' or '=' inside a value cannot end the redaction early.
 */
export function redactUrl(url: string): string {
  // Every request's log line runs this; a URL without '=' has no parameter value to hide.
  if (!url.includes('=')) return url;
  const question = url.indexOf('?');
  const hash = url.indexOf('#');
  const start = question === -1 ? hash : hash === -1 ? question : Math.min(question, hash);
  if (start === -1) return url;
  const params = url.slice(start + 1).split('&').map((param) => {
    const equals = param.indexOf('=');
    if (equals === -1) return param;
    return isSecret(param.slice(0, equals)) ? `${param.slice(0, equals + 1)}<redacted>` : param;
  });
  return `${url.slice(0, start + 1)}${params.join('&')}`;
}

function isSecret(rawName: string): boolean {
  const name = rawName.includes('+') ? rawName.replace(/\+/g, ' ') : rawName;
  if (!name.includes('%')) return SECRET_PARAMS.has(name.trim().toLowerCase());
  try {
    return SECRET_PARAMS.has(decodeURIComponent(name).trim().toLowerCase());
  } catch {
    // A name that does not decode is kept as written by the parser; hide its value anyway.
    return true;
  }
}
