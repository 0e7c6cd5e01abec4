import { z } from 'zod';
import { MatrixError, missingParam } from '../../errors.js';
import { AuthDict } from '../../http/common-schemas.js';
import { optional, parseBody } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { Operation, uiaParams, unreadParams, type StageResult } from '../../services/uia.js';
import type { JsonObject } from '../../validate.js';

/** What a password change's UIA session remembers (the new password only as a hash). */
const PasswordParams = z.object({ logout_devices: optional(z.boolean()) });
const PasswordBody = PasswordParams.extend({ new_password: optional(z.string().max(512)), auth: optional(AuthDict) });
const readPasswordParams = (raw: JsonObject) => parseBody(PasswordParams, raw);

const DeactivateBody = z.object({ erase: optional(z.boolean()), id_server: optional(z.string().max(512)), auth: optional(AuthDict) });

export function accountRoutes(router: Router, { accounts, uia, passwordReset, threepid }: Services): void {
  router.authed('GET', '/account/whoami', async ({ requester }) => {
    const body: Record<string, unknown> = { user_id: requester.userId, device_id: requester.deviceId };
    if (requester.isGuest) body.is_guest = true;
    return body;
  });

  router.optionallyAuthed('POST', '/account/password', async (ctx) => {
    const { new_password: newPassword, auth } = parseBody(PasswordBody, ctx.body);
    if (!accounts.passwordsEnabled()) throw new MatrixError(403, 'M_FORBIDDEN', 'Password changes are disabled');
    if (newPassword !== undefined) accounts.checkPasswordPolicy(newPassword);
    const requester = ctx.requester;
    if (requester?.isGuest) throw new MatrixError(403, 'M_GUEST_ACCESS_FORBIDDEN', 'Guests cannot change a password');
    // Without an access token, a reset: the account is the one whose 3PID the session proved.
    const accountOf = async (results: Record<string, StageResult>) => (requester ? requester.userId : passwordReset.account(results));
    let userId: string;
    return uia.perform(
      {
        auth,
        operation: requester ? Operation.changePassword : Operation.resetPassword,
        ...(requester ? { userId: requester.userId } : {}),
        flows: requester ? [['m.login.password']] : passwordReset.offeredFlows(),
        ip: ctx.ip,
        // The new password is remembered by the session only as a hash, until the session completes.
        params: { raw: uiaParams(ctx.body, 'new_password'), read: readPasswordParams },
        ...(newPassword !== undefined ? { hashSecret: () => accounts.hashPassword(newPassword) } : {}),
      },
      {
        check: async ({ results, secretHash }) => {
          userId = await accountOf(results);
          if (newPassword === undefined && secretHash === undefined) throw missingParam('new_password');
        },
        run: async ({ params, secretHash }) => {
          const logoutDevices = params.logout_devices ?? true;
          if (newPassword !== undefined) await accounts.changePassword(userId, newPassword, logoutDevices, requester?.deviceId);
          else await accounts.changePasswordHash(userId, secretHash!, logoutDevices, requester?.deviceId);
          return {};
        },
        // The same request again: answered, not run again. A new password in it must be the one set.
        replay: async ({ results, recorded }, refuse) => {
          if (newPassword !== undefined && !(await accounts.checkPassword(await accountOf(results), newPassword)).ok) throw refuse();
          return recorded;
        },
      },
    );
  });

  router.authed('POST', '/account/deactivate', async (ctx) => {
    const { auth, id_server: idServer, erase } = parseBody(DeactivateBody, ctx.body);
    if (ctx.requester.isGuest) throw new MatrixError(403, 'M_GUEST_ACCESS_FORBIDDEN', 'Guests cannot deactivate an account');
    // An identity server that may not be called is refused before the password is asked for.
    if (idServer !== undefined) threepid.identity.requireTrusted(idServer);
    return uia.perform(
      { auth, operation: Operation.deactivate, userId: ctx.requester.userId, flows: [['m.login.password']], ip: ctx.ip, params: unreadParams(ctx.body) },
      {
        run: async () => {
          const { id_server_unbind_result } = await accounts.deactivate(ctx.requester.userId, { idServer, erase });
          return { id_server_unbind_result };
        },
      },
    );
  });
}
