import type { Config } from '../../config/index.js';
import { isThreepidAllowed } from '../../config/sections/threepid.js';
import { MatrixError, forbidden, invalidParam } from '../../errors.js';
import { optionalString, requireString, type JsonObject } from '../../validate.js';
import { trustedIdServerUrl } from './identity-server.js';
import type { ThreepidFlow } from './validation-sessions.js';

/** The spec's grammar for client_secret; sids and link tokens use the same alphabet. */
export const CLIENT_SECRET = /^[0-9a-zA-Z.=_-]{1,255}$/;

/** The parameters every requestToken endpoint shares (both media). */
export interface TokenRequestParams {
  clientSecret: string;
  sendAttempt: number;
  nextLink: string | null;
  idServer: string | undefined;
}

export function parseClientSecret(body: JsonObject, key = 'client_secret'): string {
  const secret = requireString(body, key, 255);
  if (!CLIENT_SECRET.test(secret)) throw invalidParam(`Invalid ${key}`);
  return secret;
}

export function parseSid(body: JsonObject, key = 'sid'): string {
  const sid = requireString(body, key, 255);
  if (!CLIENT_SECRET.test(sid)) throw invalidParam(`Invalid ${key}`);
  return sid;
}

export function parseTokenRequest(body: JsonObject, config: Config): TokenRequestParams {
  const clientSecret = parseClientSecret(body);
  const attempt = body.send_attempt;
  if (attempt === undefined || attempt === null) throw new MatrixError(400, 'M_MISSING_PARAM', 'Missing parameter: send_attempt');
  if (typeof attempt !== 'number' || !Number.isSafeInteger(attempt) || attempt < 0) throw invalidParam("'send_attempt' must be a non-negative integer");
  const rawNextLink = optionalString(body, 'next_link', 2048);
  const idServer = optionalString(body, 'id_server', 512);
  const idAccessToken = optionalString(body, 'id_access_token', 2048);
  if (idServer !== undefined && idAccessToken === undefined) throw invalidParam('id_access_token is required when id_server is given');
  const nextLink = rawNextLink === undefined || rawNextLink === '' ? null : checkNextLink(config, rawNextLink);
  return { clientSecret, sendAttempt: attempt, nextLink, idServer };
}

/** A next_link must be an absolute http(s) URL and, with next_link_domain_whitelist, on a listed host. */
export function checkNextLink(config: Config, link: string): string {
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    throw invalidParam('next_link is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidParam('next_link must be an http or https URL');
  if (url.username !== '' || url.password !== '') throw invalidParam('next_link must not carry credentials');
  if (!isNextLinkHostAllowed(config, url)) throw invalidParam("next_link is not on this server's list of allowed hosts");
  return url.href;
}

export function isNextLinkHostAllowed(config: Config, url: URL): boolean {
  const whitelist = config.next_link_domain_whitelist;
  if (whitelist === undefined || whitelist === null) return true;
  return whitelist.some((host) => host.toLowerCase() === url.hostname.toLowerCase());
}

/** allowed_local_3pids: 403 M_THREEPID_DENIED for an address no rule lets in. */
export function ensureThreepidAllowed(config: Config, medium: string, address: string): void {
  if (!isThreepidAllowed(config.allowed_local_3pids, medium, address)) {
    throw new MatrixError(403, 'M_THREEPID_DENIED', 'Third-party identifier is not allowed on this server');
  }
}


/**
 * The answer when a medium is not verified by Myelin: an identity server the admin does not trust
 * is refused as such; otherwise the medium is simply not supported here.
 */
export function unsupportedMedium(config: Config, medium: string, idServer: string | undefined): MatrixError {
  if (idServer !== undefined && trustedIdServerUrl(config, idServer) === undefined) {
    return new MatrixError(400, 'M_SERVER_NOT_TRUSTED', 'This server does not trust that identity server');
  }
  const what = medium === 'email' ? 'Email addresses' : 'Phone numbers';
  return new MatrixError(400, 'M_THREEPID_MEDIUM_NOT_SUPPORTED', `${what} cannot be verified on this server`);
}

/** Whether the server lets this flow start at all; `what` names the medium's identifiers ("email addresses"). */
export function ensureFlowOpen(config: Config, flow: ThreepidFlow, passwordsEnabled: boolean, what: string): void {
  if (flow === 'add_threepid' && !config.enable_3pid_changes) throw forbidden(`Adding ${what} is disabled on this server`);
  if (flow === 'registration' && !config.enable_registration) throw forbidden('Registration has been disabled');
  if (flow === 'password_reset' && !passwordsEnabled) throw forbidden('Password reset is disabled on this server');
}

/** Why a requestToken's address is refused: nobody has it (reset), or an account already does (register, add). */
export type OwnerRefusal = 'not_found' | 'in_use';

/**
 * The owner rule of every requestToken: the spec's error, or, with request_token_inhibit_3pid_errors,
 * the refusal kind, so the caller answers as usual and keeps the code from the address.
 * `label` names the identifier in errors ("Email", "Phone number").
 */
export function ownerRefusal(flow: ThreepidFlow, owner: string | undefined, inhibit: boolean, label: string): OwnerRefusal | undefined {
  if (flow === 'password_reset' && owner === undefined) {
    if (!inhibit) throw new MatrixError(400, 'M_THREEPID_NOT_FOUND', `${label} not found`);
    return 'not_found';
  }
  if (flow !== 'password_reset' && owner !== undefined) {
    if (!inhibit) throw new MatrixError(400, 'M_THREEPID_IN_USE', `${label} is already in use`);
    return 'in_use';
  }
  return undefined;
}
