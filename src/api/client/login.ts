import { z } from 'zod';
import { DeviceId, IdentifierFields } from '../../http/common-schemas.js';
import { optional, parseBody, refuseWith } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { unknownLoginType } from '../../services/login.js';

const LoginBody = z.object({
  type: z.string().refine((type) => type === 'm.login.password', refuseWith(unknownLoginType)),
  password: z.string(),
  ...IdentifierFields,
  device_id: optional(DeviceId),
  initial_device_display_name: optional(z.string().max(512)),
  refresh_token: optional(z.boolean()),
});
const RefreshBody = z.object({ refresh_token: z.string().max(1024) });

export function loginRoutes(router: Router, { login, devices }: Services): void {
  router.public('GET', '/login', async () => ({ flows: login.flows() }));
  router.public('POST', '/login', async (ctx) => {
    const body = parseBody(LoginBody, ctx.body);
    return login.login({
      who: body,
      password: body.password,
      deviceId: body.device_id,
      displayName: body.initial_device_display_name,
      refresh: body.refresh_token ?? false,
      ip: ctx.ip,
    });
  });
  router.public('POST', '/refresh', async (ctx) => devices.refresh(parseBody(RefreshBody, ctx.body).refresh_token));
  router.authed('POST', '/logout', async (ctx) => {
    await devices.logout(ctx.requester);
    return {};
  });
  router.authed('POST', '/logout/all', async (ctx) => {
    await devices.deleteDevices(ctx.requester.userId);
    return {};
  });
}
