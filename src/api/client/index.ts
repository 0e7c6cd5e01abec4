import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { accountRoutes } from './account.js';
import { capabilitiesRoutes } from './capabilities.js';
import { deviceRoutes } from './devices.js';
import { loginRoutes } from './login.js';
import { profileRoutes } from './profile.js';
import { registerRoutes } from './register.js';
import { versionsRoutes } from './versions.js';

/** Every client-server API area, one module each. */
export function clientRoutes(router: Router, services: Services): void {
  versionsRoutes(router, services);
  capabilitiesRoutes(router, services);
  registerRoutes(router, services);
  loginRoutes(router, services);
  accountRoutes(router, services);
  deviceRoutes(router, services);
  profileRoutes(router, services);
}
