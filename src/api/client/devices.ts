import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { uiaParams } from '../../services/uia.js';
import { z } from 'zod';
import { optional, parseBody } from '../../http/parse.js';
import { objectBody } from '../../validate.js';

const DeviceUpdate = z.object({ display_name: optional(z.string().max(512)) });
const DeleteDevices = z.object({ devices: z.array(z.string().max(512)).max(1000) });

export function deviceRoutes(router: Router, { devices, uia }: Services): void {
  router.authed('GET', '/devices', async ({ requester }) => ({ devices: await devices.listDevices(requester.userId) }));

  router.authed('GET', '/devices/:deviceId', async ({ requester, params }) => devices.getDevice(requester.userId, params.deviceId!));

  router.authed('PUT', '/devices/:deviceId', async ({ requester, params, body }) => {
    const { display_name: displayName } = parseBody(DeviceUpdate, body);
    if (displayName !== undefined) await devices.renameDevice(requester.userId, params.deviceId!, displayName);
    else await devices.getDevice(requester.userId, params.deviceId!);
    return {};
  });

  const deleteBehindUia = async (ctx: Parameters<Parameters<Router['authed']>[2]>[0], operation: string, deviceIds: string[]) => {
    const body = objectBody(ctx.body);
    const userId = ctx.requester.userId;
    return uia.perform({ auth: body.auth, operation, userId, flows: [['m.login.password']], ip: ctx.ip, params: uiaParams(body) }, async () => {
      await devices.deleteDevices(userId, deviceIds);
      return {};
    });
  };

  router.authed('DELETE', '/devices/:deviceId', async (ctx) => {
    const deviceId = ctx.params.deviceId!;
    await devices.getDevice(ctx.requester.userId, deviceId);
    return deleteBehindUia(ctx, `DELETE /devices/${deviceId}`, [deviceId]);
  });

  router.authed('POST', '/delete_devices', async (ctx) => {
    // Required in every request, as in Synapse, so the list is never a remembered one.
    const { devices: deviceIds } = parseBody(DeleteDevices, ctx.body);
    return deleteBehindUia(ctx, 'POST /delete_devices', deviceIds);
  });
}
