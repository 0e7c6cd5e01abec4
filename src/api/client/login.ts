import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { objectBody, requireString } from '../../validate.js';

export function loginRoutes(router: Router, { login, devices }: Services): void {
  router.public('GET', '/login', async () => ({ flows: login.flows() }));
  router.public('POST', '/login', async (ctx) => login.login({ body: objectBody(ctx.body), ip: ctx.ip }));
  router.public('POST', '/refresh', async (ctx) => devices.refresh(requireString(objectBody(ctx.body), 'refresh_token', 1024)));
  router.authed('POST', '/logout', async (ctx) => {
    await devices.logout(ctx.requester);
    return {};
  });
  router.authed('POST', '/logout/all', async (ctx) => {
    await devices.deleteDevices(ctx.requester.userId);
    return {};
  });
}
