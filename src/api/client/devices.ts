import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { uiaParams } from '../../services/uia.js';
import { objectBody, optionalString, requireStringArray } from '../../validate.js';

export function deviceRoutes(router: Router, { sessions, uia }: Services): void {
  router.authed('GET', '/devices', async ({ requester }) => ({ devices: await sessions.listDevices(requester.userId) }));

  router.authed('GET', '/devices/:deviceId', async ({ requester, params }) => sessions.getDevice(requester.userId, params.deviceId!));

  router.authed('PUT', '/devices/:deviceId', async ({ requester, params, body }) => {
    const displayName = optionalString(objectBody(body), 'display_name', 512);
    if (displayName !== undefined) await sessions.renameDevice(requester.userId, params.deviceId!, displayName);
    else await sessions.getDevice(requester.userId, params.deviceId!);
    return {};
  });

  const deleteBehindUia = async (ctx: Parameters<Parameters<Router['authed']>[2]>[0], operation: string, deviceIds: string[]) => {
    const body = objectBody(ctx.body);
    const userId = ctx.requester.userId;
    return uia.perform({ auth: body.auth, operation, userId, flows: [['m.login.password']], ip: ctx.ip, params: uiaParams(body) }, async () => {
      await sessions.deleteDevices(userId, deviceIds);
      return {};
    });
  };

  router.authed('DELETE', '/devices/:deviceId', async (ctx) => {
    const deviceId = ctx.params.deviceId!;
    await sessions.getDevice(ctx.requester.userId, deviceId);
    return deleteBehindUia(ctx, `DELETE /devices/${deviceId}`, [deviceId]);
  });

  router.authed('POST', '/delete_devices', async (ctx) => {
    // Required in every request, as in Synapse, so the list is never a remembered one.
    const deviceIds = requireStringArray(objectBody(ctx.body), 'devices');
    return deleteBehindUia(ctx, 'POST /delete_devices', deviceIds);
  });
}
