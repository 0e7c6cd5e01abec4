import { z } from 'zod';
import { DeviceId } from '../../http/common-schemas.js';
import { optional, parseBody } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { adminRoute } from './common.js';

const RenameBody = z.object({ display_name: optional(z.string().max(512)) });
const DeleteDevicesBody = z.object({ devices: z.array(DeviceId).max(1000) });

/** Synapse's device admin API: a user's devices, one device, renaming and deleting them. */
export function adminDeviceRoutes(router: Router, { admin }: Services): void {
  const users = admin.users;
  adminRoute(router, admin, 'GET', 'v2', '/users/:userId/devices', async ({ params }) => users.listDevices(params.userId!));
  adminRoute(router, admin, 'GET', 'v2', '/users/:userId/devices/:deviceId', async ({ params }) => users.getDevice(params.userId!, params.deviceId!));
  adminRoute(router, admin, 'PUT', 'v2', '/users/:userId/devices/:deviceId', async ({ params, body }) => {
    await users.renameDevice(params.userId!, params.deviceId!, parseBody(RenameBody, body).display_name);
    return {};
  });
  adminRoute(router, admin, 'DELETE', 'v2', '/users/:userId/devices/:deviceId', async ({ params }) => {
    await users.deleteDevices(params.userId!, [params.deviceId!]);
    return {};
  });
  adminRoute(router, admin, 'POST', 'v2', '/users/:userId/delete_devices', async ({ params, body }) => {
    await users.deleteDevices(params.userId!, parseBody(DeleteDevicesBody, body).devices);
    return {};
  });
}
