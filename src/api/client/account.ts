import { MatrixError } from '../../errors.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { objectBody, optionalBoolean, optionalString, requireString } from '../../validate.js';

export function accountRoutes(router: Router, { accounts, uia, passwordReset }: Services): void {
  router.authed('GET', '/account/whoami', async ({ requester }) => {
    const body: Record<string, unknown> = { user_id: requester.userId, device_id: requester.deviceId };
    if (requester.isGuest) body.is_guest = true;
    return body;
  });

  router.optionallyAuthed('POST', '/account/password', async (ctx) => {
    const body = objectBody(ctx.body);
    const newPassword = optionalString(body, 'new_password', 512);
    const logoutDevices = optionalBoolean(body, 'logout_devices') ?? true;
    if (!accounts.passwordsEnabled()) throw new MatrixError(403, 'M_FORBIDDEN', 'Password changes are disabled');
    if (newPassword !== undefined) accounts.checkPasswordPolicy(newPassword);
    const requester = ctx.requester;
    let userId: string;
    if (requester) {
      if (requester.isGuest) throw new MatrixError(403, 'M_GUEST_ACCESS_FORBIDDEN', 'Guests cannot change a password');
      const outcome = await uia.authenticate({
        auth: body.auth,
        operation: 'POST /account/password',
        userId: requester.userId,
        flows: [['m.login.password']],
        ip: ctx.ip,
      });
      requireString(body, 'new_password');
      if (!(await uia.finish(outcome.sessionId))) throw new MatrixError(403, 'M_FORBIDDEN', 'This authentication session has already been used');
      userId = requester.userId;
    } else {
      userId = await passwordReset.authenticate(body, ctx.ip);
    }
    await accounts.changePassword(userId, requireString(body, 'new_password', 512), logoutDevices, requester?.deviceId);
    return {};
  });

  router.authed('POST', '/account/deactivate', async (ctx) => {
    const body = objectBody(ctx.body);
    optionalBoolean(body, 'erase');
    optionalString(body, 'id_server', 512);
    if (ctx.requester.isGuest) throw new MatrixError(403, 'M_GUEST_ACCESS_FORBIDDEN', 'Guests cannot deactivate an account');
    const outcome = await uia.authenticate({
      auth: body.auth,
      operation: 'POST /account/deactivate',
      userId: ctx.requester.userId,
      flows: [['m.login.password']],
      ip: ctx.ip,
    });
    if (!(await uia.finish(outcome.sessionId))) throw new MatrixError(403, 'M_FORBIDDEN', 'This authentication session has already been used');
    await accounts.deactivate(ctx.requester.userId);
    return { id_server_unbind_result: 'success' };
  });
}
