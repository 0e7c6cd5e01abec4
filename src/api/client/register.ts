import { z } from 'zod';
import { MatrixError, missingParam } from '../../errors.js';
import { AuthDict, DeviceId } from '../../http/common-schemas.js';
import { optional, parseBody, parseQuery, refuseWith } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { addressBucket } from '../../services/ratelimiter.js';
import type { RegistrationParams } from '../../services/registration.js';
import { uiaParams, type UiaParams } from '../../services/uia.js';
import type { JsonObject } from '../../validate.js';

/** What a registration UIA session remembers between requests. */
const RegisterParams = z.object({
  username: optional(z.string().max(512)),
  device_id: optional(DeviceId),
  initial_device_display_name: optional(z.string().max(512)),
  inhibit_login: optional(z.boolean()),
});
const RegisterBody = RegisterParams.extend({
  password: optional(z.string().max(512)),
  refresh_token: optional(z.boolean()),
  auth: optional(AuthDict),
  guest_access_token: optional(z.string().max(1024)),
});
const RegisterQuery = z.object({ kind: optional(z.enum(['user', 'guest'])) });
const readParams = (raw: JsonObject): RegistrationParams => parseBody(RegisterParams, raw);

const AvailableQuery = z.object({ username: z.string().refine((username) => username !== '', refuseWith(() => missingParam('username'))) });

export function registerRoutes(router: Router, { registration, accounts, limiter, config }: Services): void {
  router.public('POST', '/register', async (ctx) => {
    const { kind = 'user' } = parseQuery(RegisterQuery, ctx.query);
    const body = parseBody(RegisterBody, ctx.body);
    // The password is remembered only as a hash. As Synapse does, a display name sent without a
    // password is dropped: some clients send it alone, which would replace the remembered request.
    const raw = uiaParams(ctx.body, 'password', 'refresh_token', 'guest_access_token');
    if (body.password === undefined) delete raw.initial_device_display_name;
    const params: UiaParams<RegistrationParams> = { raw, read: readParams };
    return registration.register({ ...body, kind, ip: ctx.ip, params });
  });

  router.public('GET', '/register/available', async (ctx) => {
    const { username } = parseQuery(AvailableQuery, ctx.query);
    await limiter.take(`register:available:${addressBucket(ctx.ip)}`, config.rc_registration_availability);
    if (!config.enable_registration) throw new MatrixError(403, 'M_FORBIDDEN', 'Registration has been disabled');
    const localpart = accounts.validateLocalpart(username);
    await accounts.ensureAvailable(localpart);
    return { available: true };
  });
}
