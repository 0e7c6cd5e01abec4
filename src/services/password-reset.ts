import { MatrixError } from '../errors.js';
import type { Store } from '../storage/index.js';
import type { NewThreepid } from './accounts.js';
import type { UiaOutcome, UiaRequest, UiaService } from './uia.js';

/** Builds the UIA flows that prove ownership of an account without a password (e.g. by email). */
export type ResetFlows = () => string[][];

/**
 * POST /account/password without an access token: the requester proves they hold a 3PID of the
 * account through UIA, and the account is the one that 3PID is bound to.
 */
export class PasswordResetService {
  constructor(
    private readonly store: Store,
    private readonly uia: UiaService,
    readonly flows: ResetFlows,
  ) {}

  /** The UIA round of a reset; `req` carries the request's parameters and password hasher. */
  async authenticate(req: Omit<UiaRequest, 'operation' | 'flows'>): Promise<{ outcome: UiaOutcome; flows: string[][] }> {
    const flows = this.flows();
    if (flows.length === 0) throw new MatrixError(401, 'M_MISSING_TOKEN', 'Missing access token');
    const outcome = await this.uia.authenticate({ ...req, operation: 'POST /account/password (reset)', flows });
    return { outcome, flows };
  }

  /** The account whose 3PID the completed session proved. */
  async account(outcome: UiaOutcome): Promise<string> {
    for (const result of Object.values(outcome.results)) {
      const threepid = result.threepid as NewThreepid | undefined;
      if (!threepid) continue;
      const userId = await this.store.threepids.findUser(threepid.medium, threepid.address);
      if (userId) return userId;
    }
    throw new MatrixError(400, 'M_THREEPID_NOT_FOUND', 'No account is bound to that address');
  }
}
