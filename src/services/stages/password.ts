import { MatrixError, forbidden } from '../../errors.js';
import { PasswordAuth, identifierOf } from '../../http/common-schemas.js';
import { parseBody } from '../../http/parse.js';
import type { RateLimitConfig } from '../../config/schema.js';
import type { Store } from '../../storage/index.js';
import type { AccountService } from '../accounts.js';
import type { RateLimiter } from '../ratelimiter.js';
import { resolveIdentifier } from '../identifiers.js';
import { UiaRefusal, type AuthDict, type StageContext, type StageResult, type UiaStage } from '../uia.js';

/**
 * m.login.password: the account's own password; on an authenticated request it must be the requester's.
 * Wrong passwords spend the same failed-attempts budget as /login (rc_login.failed_attempts), so that
 * a stolen access token cannot be used to guess the account's password here instead.
 */
export class PasswordStage implements UiaStage {
  readonly type = 'm.login.password';

  constructor(
    private readonly accounts: AccountService,
    private readonly store: Store,
    private readonly limiter: RateLimiter,
    private readonly failedAttempts: RateLimitConfig,
  ) {}

  async check(auth: AuthDict, ctx: StageContext): Promise<{ user_id: string } & StageResult> {
    const fields = parseBody(PasswordAuth, auth);
    let userId: string | undefined;
    let limitKey: string;
    if (fields.identifier === undefined && fields.user === undefined && fields.medium === undefined && fields.address === undefined && ctx.userId) {
      userId = limitKey = ctx.userId;
    } else {
      const who = await resolveIdentifier(identifierOf(fields), this.accounts, this.store);
      userId = who.kind === 'user' ? who.userId : undefined;
      limitKey = who.kind === 'user' ? who.userId : who.limitKey;
    }
    // Checked before the password, so that the answer tells nothing about another account's password.
    if (ctx.userId && userId !== ctx.userId) throw new UiaRefusal(403, 'M_FORBIDDEN', 'You can only authenticate as yourself');
    await this.limiter.check(`login:failed:${limitKey}`, this.failedAttempts);
    const { ok, deactivated } = await this.accounts.checkPassword(userId ?? '', fields.password);
    if (!ok || !userId) {
      await this.limiter.record(`login:failed:${limitKey}`, this.failedAttempts);
      throw forbidden('Invalid username or password');
    }
    if (deactivated) throw new MatrixError(403, 'M_USER_DEACTIVATED', 'This account has been deactivated');
    return { user_id: userId };
  }
}
