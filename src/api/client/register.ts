import { MatrixError } from '../../errors.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { addressBucket } from '../../services/ratelimiter.js';
import { objectBody } from '../../validate.js';

export function registerRoutes(router: Router, { registration, accounts, limiter, config }: Services): void {
  router.public('POST', '/register', async (ctx) => {
    return registration.register(objectBody(ctx.body), ctx.query.kind ?? 'user', ctx.ip);
  });

  router.public('GET', '/register/available', async (ctx) => {
    const username = ctx.query.username;
    if (username === undefined || username === '') throw new MatrixError(400, 'M_MISSING_PARAM', 'Missing parameter: username');
    await limiter.take(`register:available:${addressBucket(ctx.ip)}`, config.rc_registration_availability);
    if (!config.enable_registration) throw new MatrixError(403, 'M_FORBIDDEN', 'Registration has been disabled');
    const localpart = accounts.validateLocalpart(username);
    await accounts.ensureAvailable(localpart);
    return { available: true };
  });
}
