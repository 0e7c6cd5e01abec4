import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';

/** Spec versions whose account, device and 3PID endpoints Myelin serves as written. */
export const SPEC_VERSIONS = [
  'r0.5.0',
  'r0.6.0',
  'r0.6.1',
  'v1.1',
  'v1.2',
  'v1.3',
  'v1.4',
  'v1.5',
  'v1.6',
  'v1.7',
  'v1.8',
  'v1.9',
  'v1.10',
  'v1.11',
  'v1.12',
];

export function versionsRoutes(router: Router, services: Services): void {
  const body = {
    versions: SPEC_VERSIONS,
    unstable_features: {
      'm.require_identity_server': false,
      'm.separate_add_and_bind': true,
      ...services.unstableFeatures,
    },
  };
  // Built once and never mutated: each request only serialises it.
  Object.freeze(body);
  router.public('GET', '/versions', async () => body, { prefixes: ['/_matrix/client'] });
  router.public(
    'GET',
    '/matrix/client',
    async () => ({ 'm.homeserver': { base_url: services.publicBaseUrl.replace(/\/$/, '') } }),
    { prefixes: ['/.well-known'] },
  );
}
