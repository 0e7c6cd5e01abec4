import { MatrixError } from '../../errors.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { uiaParams } from '../../services/uia.js';
import { objectBody, optionalBoolean, optionalString } from '../../validate.js';

export function accountRoutes(router: Router, { accounts, uia, passwordReset }: Services): void {
  router.authed('GET', '/account/whoami', async ({ requester }) => {
    const body: Record<string, unknown> = { user_id: requester.userId, device_id: requester.deviceId };
    if (requester.isGuest) body.is_guest = true;
    return body;
  });

  router.optionallyAuthed('POST', '/account/password', async (ctx) => {
    const body = objectBody(ctx.body);
    const newPassword = optionalString(body, 'new_password', 512);
    optionalBoolean(body, 'logout_devices');
    if (!accounts.passwordsEnabled()) throw new MatrixError(403, 'M_FORBIDDEN', 'Password changes are disabled');
    if (newPassword !== undefined) accounts.checkPasswordPolicy(newPassword);
    const requester = ctx.requester;
    if (requester?.isGuest) throw new MatrixError(403, 'M_GUEST_ACCESS_FORBIDDEN', 'Guests cannot change a password');
    // The new password is remembered by the session only as a hash, until the session completes.
    const req = {
      auth: body.auth,
      ip: ctx.ip,
      params: uiaParams(body, 'new_password'),
      ...(newPassword !== undefined ? { hashSecret: () => accounts.hashPassword(newPassword) } : {}),
    };
    const flows = [['m.login.password']];
    const { outcome, flows: offered } = requester
      ? { outcome: await uia.authenticate({ ...req, operation: 'POST /account/password', userId: requester.userId, flows }), flows }
      : await passwordReset.authenticate(req);
    const userId = requester ? requester.userId : await passwordReset.account(outcome);
    if (outcome.replay) {
      // The same request again: answered, not run again. A new password in it must be the one set.
      if (newPassword !== undefined && !(await accounts.checkPassword(userId, newPassword)).ok) throw uia.completedAnswer({ flows: offered }, outcome);
      return outcome.replay;
    }
    if (newPassword === undefined && outcome.secretHash === undefined) throw new MatrixError(400, 'M_MISSING_PARAM', 'Missing parameter: new_password');
    const logoutDevices = optionalBoolean(outcome.params, 'logout_devices') ?? true;
    if (!(await uia.finish(outcome.sessionId))) throw uia.completedAnswer({ flows: offered }, outcome);
    if (newPassword !== undefined) await accounts.changePassword(userId, newPassword, logoutDevices, requester?.deviceId);
    else await accounts.changePasswordHash(userId, outcome.secretHash!, logoutDevices, requester?.deviceId);
    await uia.record(outcome.sessionId, {});
    return {};
  });

  router.authed('POST', '/account/deactivate', async (ctx) => {
    const body = objectBody(ctx.body);
    optionalBoolean(body, 'erase');
    optionalString(body, 'id_server', 512);
    if (ctx.requester.isGuest) throw new MatrixError(403, 'M_GUEST_ACCESS_FORBIDDEN', 'Guests cannot deactivate an account');
    return uia.perform(
      { auth: body.auth, operation: 'POST /account/deactivate', userId: ctx.requester.userId, flows: [['m.login.password']], ip: ctx.ip, params: uiaParams(body) },
      async () => {
        await accounts.deactivate(ctx.requester.userId);
        return { id_server_unbind_result: 'success' };
      },
    );
  });
}
