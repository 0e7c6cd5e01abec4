import { z } from 'zod';
import { forbidden } from '../../errors.js';
import { parseBody } from '../../http/parse.js';
import { REGISTRATION_TOKEN_STAGE, type RegistrationTokenService } from '../admin/registration-tokens.js';
import { Operation, type AuthDict, type StageContext, type StageResult, type UiaStage } from '../uia.js';

const TokenAuth = z.object({ token: z.string().max(256) });

/** m.login.registration_token: a token an admin handed out, each one good for a number of registrations. */
export class RegistrationTokenStage implements UiaStage {
  readonly type = REGISTRATION_TOKEN_STAGE;

  constructor(private readonly tokens: RegistrationTokenService) {}

  async check(auth: AuthDict, ctx: StageContext): Promise<StageResult> {
    if (ctx.operation !== Operation.register) throw forbidden(`${this.type} can only authorise a registration`);
    const { token } = parseBody(TokenAuth, auth);
    await this.tokens.use(ctx.sessionId, token);
    return {};
  }
}
