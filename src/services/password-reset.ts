import { MatrixError } from '../errors.js';
import type { Store } from '../storage/index.js';
import { validatedThreepids, type StageResult } from './uia.js';

/** Builds the UIA flows that prove ownership of an account without a password (e.g. by email). */
export type ResetFlows = () => string[][];

/**
 * POST /account/password without an access token: the requester proves they hold a 3PID of the
 * account through UIA, and the account is the one that 3PID is bound to.
 */
export class PasswordResetService {
  constructor(
    private readonly store: Store,
    readonly flows: ResetFlows,
  ) {}

  /** The UIA flows of a reset; none configured means a reset is impossible, so an access token is missing. */
  offeredFlows(): string[][] {
    const flows = this.flows();
    if (flows.length === 0) throw new MatrixError(401, 'M_MISSING_TOKEN', 'Missing access token');
    return flows;
  }

  /** The account whose 3PID the completed stages proved. */
  async account(results: Record<string, StageResult>): Promise<string> {
    for (const threepid of validatedThreepids(results)) {
      const userId = await this.store.threepids.findUser(threepid.medium, threepid.address);
      if (userId) return userId;
    }
    throw new MatrixError(400, 'M_THREEPID_NOT_FOUND', 'No account is bound to that address');
  }
}
