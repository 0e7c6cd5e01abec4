import { MatrixError, badJson, forbidden, missingParam } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import type { AccountService } from '../accounts.js';
import { resolveIdentifier } from '../identifiers.js';
import { UiaRefusal, type StageContext, type StageResult, type UiaStage } from '../uia.js';

/** m.login.password: the account's own password; on an authenticated request it must be the requester's. */
export class PasswordStage implements UiaStage {
  readonly type = 'm.login.password';

  constructor(
    private readonly accounts: AccountService,
    private readonly store: Store,
  ) {}

  async check(auth: Record<string, unknown>, ctx: StageContext): Promise<StageResult> {
    const password = auth.password;
    if (password === undefined) throw missingParam('password');
    if (typeof password !== 'string') throw badJson("'password' must be a string");
    let userId: string | undefined;
    if (auth.identifier === undefined && auth.user === undefined && auth.medium === undefined) {
      userId = ctx.userId;
      if (!userId) throw missingParam('identifier');
    } else {
      const who = await resolveIdentifier(auth, this.accounts, this.store);
      userId = who.kind === 'user' ? who.userId : undefined;
    }
    // Checked before the password, so that the answer tells nothing about another account's password.
    if (ctx.userId && userId !== ctx.userId) throw new UiaRefusal(403, 'M_FORBIDDEN', 'You can only authenticate as yourself');
    const { ok, deactivated } = await this.accounts.checkPassword(userId ?? '', password);
    if (!ok || !userId) throw forbidden('Invalid username or password');
    if (deactivated) throw new MatrixError(403, 'M_USER_DEACTIVATED', 'This account has been deactivated');
    return { user_id: userId };
  }
}
