import { signJson, type JsonSigner } from './rooms/event-hash.js';

/**
 * Request authentication between servers (server-server API "Request Authentication"): the
 * sender signs the canonical JSON of {method, uri, origin, destination, content} with its server
 * key and sends the signature in an `Authorization: X-Matrix ...` header. Identity servers accept
 * the same for requests a homeserver makes on behalf of its users (e.g. POST /3pid/unbind).
 */
export interface SignableRequest {
  method: string;
  /** The path and query, from `/_matrix/...` on: no scheme, no host. */
  uri: string;
  /** This server's name. */
  origin: string;
  /** The server name of the receiver, as the sender named it (before any delegation). */
  destination: string;
  /** The JSON body, when the request has one. */
  content?: unknown;
}

/** The value of the Authorization header for `request`, signed with `key`. */
export function xMatrixAuthorization(request: SignableRequest, key: JsonSigner): string {
  const json: Record<string, unknown> = { method: request.method, uri: request.uri, origin: request.origin, destination: request.destination };
  if (request.content !== undefined) json.content = request.content;
  const signature = signJson(json, request.origin, key).signatures[request.origin]![key.keyId]!;
  const params = { origin: request.origin, destination: request.destination, key: key.keyId, sig: signature };
  return `X-Matrix ${Object.entries(params).map(([name, value]) => `${name}=${quoted(value)}`).join(',')}`;
}

/** An RFC 9110 quoted string: backslash and double quote escaped. */
function quoted(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}
