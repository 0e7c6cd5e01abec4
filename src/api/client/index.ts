import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { accountRoutes } from './account.js';
import { capabilitiesRoutes } from './capabilities.js';
import { deviceRoutes } from './devices.js';
import { loginRoutes } from './login.js';
import { profileRoutes } from './profile.js';
import { registerRoutes } from './register.js';
import { threepidRoutes } from './threepid.js';
import { msisdnRoutes } from './threepid-msisdn.js';
import { versionsRoutes } from './versions.js';
import { accountDataRoutes } from './account-data.js';
import { filterRoutes } from './filter.js';
import { keyRoutes } from './keys.js';
import { presenceRoutes } from './presence.js';
import { pushRuleRoutes } from './push-rules.js';
import { roomKeyRoutes } from './room-keys.js';
import { aliasRoutes, roomRoutes } from './rooms.js';
import { roomReadRoutes } from './room-reads.js';
import { syncRoutes } from './sync.js';
import { thirdPartyRoutes } from './thirdparty.js';
import { toDeviceRoutes } from './to-device.js';
import { voipRoutes } from './voip.js';

/** Every client-server API area, one module each. */
export function clientRoutes(router: Router, services: Services): void {
  versionsRoutes(router, services);
  capabilitiesRoutes(router, services);
  registerRoutes(router, services);
  loginRoutes(router, services);
  accountRoutes(router, services);
  deviceRoutes(router, services);
  profileRoutes(router, services);
  threepidRoutes(router, services);
  msisdnRoutes(router, services);
  accountDataRoutes(router, services);
  filterRoutes(router, services);
  keyRoutes(router, services);
  presenceRoutes(router, services);
  pushRuleRoutes(router, services);
  roomKeyRoutes(router, services);
  roomRoutes(router, services);
  aliasRoutes(router, services);
  roomReadRoutes(router, services);
  syncRoutes(router, services);
  thirdPartyRoutes(router, services);
  toDeviceRoutes(router, services);
  voipRoutes(router, services);
}
