import { MatrixError, forbidden } from '../../errors.js';
import { requireObject } from '../../validate.js';
import type { Medium } from '../threepid/address.js';
import { parseClientSecret, parseSid } from '../threepid/policy.js';
import type { ThreepidFlow, ValidationSessionService } from '../threepid/validation-sessions.js';
import type { StageContext, StageResult, UiaStage } from '../uia.js';

/** Which validation flow may serve which UIA operation. */
const FLOW_OF_OPERATION: Record<string, ThreepidFlow> = {
  'POST /register': 'registration',
  'POST /account/password (reset)': 'password_reset',
};

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

  async check(auth: Record<string, unknown>, ctx: StageContext): Promise<StageResult> {
    const dict = requireObject(auth.threepid_creds ?? auth.threepidCreds, 'threepid_creds');
    const sid = parseSid(dict);
    const clientSecret = parseClientSecret(dict);
    const flow = FLOW_OF_OPERATION[ctx.operation];
    if (!flow) throw forbidden(`${this.type} cannot authorise this operation`);
    const threepid = await this.sessions.consume({ sid, clientSecret, medium: this.medium, flow, consumer: ctx.sessionId });
    if (threepid === 'pending') throw new MatrixError(401, 'M_UNAUTHORIZED', 'The address has not been validated yet');
    return { threepid };
  }
}
