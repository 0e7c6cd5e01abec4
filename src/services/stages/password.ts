import { MatrixError, forbidden } from '../../errors.js';
import { PasswordAuth, identifierOf } from '../../http/common-schemas.js';
import { parseBody } from '../../http/parse.js';
import type { Store } from '../../storage/index.js';
import type { AccountService } from '../accounts.js';
import { resolveIdentifier } from '../identifiers.js';
import { UiaRefusal, type AuthDict, type StageContext, type StageResult, type UiaStage } from '../uia.js';

/** m.login.password: the account's own password; on an authenticated request it must be the requester's. */
export class PasswordStage implements UiaStage {
  readonly type = 'm.login.password';

  constructor(
    private readonly accounts: AccountService,
    private readonly store: Store,
  ) {}

  async check(auth: AuthDict, ctx: StageContext): Promise<{ user_id: string } & StageResult> {
    const fields = parseBody(PasswordAuth, auth);
    let userId: string | undefined;
    if (fields.identifier === undefined && fields.user === undefined && fields.medium === undefined && fields.address === undefined && ctx.userId) {
      userId = ctx.userId;
    } else {
      const who = await resolveIdentifier(identifierOf(fields), this.accounts, this.store);
      userId = who.kind === 'user' ? who.userId : undefined;
    }
    // Checked before the password, so that the answer tells nothing about another account's password.
    if (ctx.userId && userId !== ctx.userId) throw new UiaRefusal(403, 'M_FORBIDDEN', 'You can only authenticate as yourself');
    const { ok, deactivated } = await this.accounts.checkPassword(userId ?? '', fields.password);
    if (!ok || !userId) throw forbidden('Invalid username or password');
    if (deactivated) throw new MatrixError(403, 'M_USER_DEACTIVATED', 'This account has been deactivated');
    return { user_id: userId };
  }
}
