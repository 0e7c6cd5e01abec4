const SECRET_PARAMS = /([?&](?:access_token|token|client_secret|sid|refresh_token|password|nonce|mac)=)[^&#]*/gi;

/** A URL fit for the logs: the values of parameters that carry secrets are replaced. */
export function redactUrl(url: string): string {
  // Every request's log line runs this; a URL without '=' has no parameter value to hide.
  return url.includes('=') ? url.replace(SECRET_PARAMS, '$1<redacted>') : url;
}
