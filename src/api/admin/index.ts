import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { adminDeviceRoutes } from './devices.js';
import { adminEventReportRoutes } from './event-reports.js';
import { adminMediaRoutes } from './media.js';
import { adminRegistrationTokenRoutes } from './registration-tokens.js';
import { adminRoomRoutes } from './rooms.js';
import { adminUserRoutes } from './users.js';

/** Synapse's admin API under /_synapse/admin, one module per area (shared-secret registration is in register.ts). */
export function adminRoutes(router: Router, services: Services): void {
  adminUserRoutes(router, services);
  adminDeviceRoutes(router, services);
  adminRoomRoutes(router, services);
  adminRegistrationTokenRoutes(router, services);
  adminMediaRoutes(router, services);
  adminEventReportRoutes(router, services);
  // Public in Synapse too: tools read it before they have a token.
  router.public('GET', '/server_version', async () => ({ server_version: services.admin.serverVersion }), { prefixes: ['/_synapse/admin/v1'] });
}
