import { z } from 'zod';
import { AuthDict, DeviceId } from '../../http/common-schemas.js';
import { optional, parseBody } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { Operation, unreadParams, type AuthDict as Auth, type UiaOperation } from '../../services/uia.js';

const DeviceUpdate = z.object({ display_name: optional(z.string().max(512)) });
const DeleteDevice = z.object({ auth: optional(AuthDict) });
const DeleteDevices = z.object({ devices: z.array(DeviceId).max(1000), auth: optional(AuthDict) });

export function deviceRoutes(router: Router, { devices, uia }: Services): void {
  router.authed('GET', '/devices', async ({ requester }) => ({ devices: await devices.listDevices(requester.userId) }));

  router.authed('GET', '/devices/:deviceId', async ({ requester, params }) => devices.getDevice(requester.userId, params.deviceId!));

  router.authed('PUT', '/devices/:deviceId', async ({ requester, params, body }) => {
    const { display_name: displayName } = parseBody(DeviceUpdate, body);
    if (displayName !== undefined) await devices.renameDevice(requester.userId, params.deviceId!, displayName);
    else await devices.getDevice(requester.userId, params.deviceId!);
    return {};
  });

  const deleteBehindUia = async (ctx: Parameters<Parameters<Router['authed']>[2]>[0], auth: Auth | undefined, operation: UiaOperation, deviceIds: string[]) => {
    const userId = ctx.requester.userId;
    return uia.perform({ auth, operation, userId, flows: [['m.login.password']], ip: ctx.ip, params: unreadParams(ctx.body) }, {
      run: async () => {
        await devices.deleteDevices(userId, deviceIds);
        return {};
      },
    });
  };

  router.authed('DELETE', '/devices/:deviceId', async (ctx) => {
    const deviceId = ctx.params.deviceId!;
    const { auth } = parseBody(DeleteDevice, ctx.body);
    await devices.getDevice(ctx.requester.userId, deviceId);
    return deleteBehindUia(ctx, auth, Operation.deleteDevice(deviceId), [deviceId]);
  });

  router.authed('POST', '/delete_devices', async (ctx) => {
    // Required in every request, as in Synapse, so the list is never a remembered one.
    const { devices: deviceIds, auth } = parseBody(DeleteDevices, ctx.body);
    return deleteBehindUia(ctx, auth, Operation.deleteDevices, deviceIds);
  });
}
