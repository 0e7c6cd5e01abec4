import type { Medium } from './address.js';
import type { ThreepidFlow } from './validation-sessions.js';

/** Where clients POST a code ({sid, client_secret, token}); the `submit_url` of requestToken. */
export function submitTokenPath(flow: ThreepidFlow, medium: Medium): string {
  return `/_matrix/client/unstable/${flow}/${medium}/submit_token`;
}

/** The page a mailed link opens (GET shows a confirmation, POST validates). Synapse's location. */
export function emailLinkPath(flow: ThreepidFlow): string {
  return `/_synapse/client/${flow}/email/submit_token`;
}

/** Joins a path onto public_baseurl (which ends with '/'). */
export function absolute(publicBaseUrl: string, path: string): string {
  return publicBaseUrl + path.replace(/^\//, '');
}
