import { MatrixError, forbidden } from '../../errors.js';
import { ThreepidAuth } from '../../http/common-schemas.js';
import { parseBody } from '../../http/parse.js';
import type { Medium } from '../threepid/address.js';
import type { ThreepidFlow, ValidationSessionService, ValidatedThreepid } from '../threepid/validation-sessions.js';
import { Operation, type AuthDict, type StageContext, type UiaOperation, type UiaStage } from '../uia.js';

/** Which validation flow may serve which UIA operation. */
const FLOW_OF_OPERATION = new Map<UiaOperation, ThreepidFlow>([
  [Operation.register, 'registration'],
  [Operation.resetPassword, 'password_reset'],
]);

/**
 * m.login.email.identity (and, with medium msisdn, m.login.msisdn): `threepid_creds` name a
 * validation session of this operation's flow. Until it is validated the stage fails with 401, so
 * clients poll; once validated it is used up by this UIA session and yields the 3PID.
 */
export class ThreepidStage implements UiaStage {
  constructor(
    readonly type: string,
    private readonly medium: Medium,
    private readonly sessions: ValidationSessionService,
  ) {}

  async check(auth: AuthDict, ctx: StageContext): Promise<{ threepid: ValidatedThreepid }> {
    const creds = parseBody(ThreepidAuth, auth);
    const flow = FLOW_OF_OPERATION.get(ctx.operation);
    if (!flow) throw forbidden(`${this.type} cannot authorise this operation`);
    const threepid = await this.sessions.consume({ sid: creds.sid, clientSecret: creds.client_secret, medium: this.medium, flow, consumer: ctx.sessionId });
    if (threepid === 'pending') throw new MatrixError(401, 'M_UNAUTHORIZED', 'The address has not been validated yet');
    return { threepid };
  }
}
