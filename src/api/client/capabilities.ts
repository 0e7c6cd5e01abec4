import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';

export function capabilitiesRoutes(router: Router, services: Services): void {
  router.authed('GET', '/capabilities', async () => ({ capabilities: services.capabilities() }));
}
