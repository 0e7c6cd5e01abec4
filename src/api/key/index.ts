import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { serverKeysResponse } from '../../services/rooms/signing-key.js';

const KEY_PREFIX = ['/_matrix/key/v2'];

/** The server's published signing keys (spec server-server-api "Publishing Keys"); no access token. */
export function serverKeyRoutes(router: Router, services: Services): void {
  const answer = async () => serverKeysResponse(services.config.server_name, services.signingKeys, services.clock.now());
  router.public('GET', '/server', answer, { prefixes: KEY_PREFIX });
  // The deprecated form with a key ID answers the same: every key, as Synapse does.
  router.public('GET', '/server/:keyId', answer, { prefixes: KEY_PREFIX });
}
