import { z } from 'zod';
import { rateLimit } from '../schema.js';

/** Registration tokens (MSC3231, in the spec since v1.2), with Synapse's key names. */
export const adminSection = {
  /** Every registration flow starts with m.login.registration_token; tokens are managed through the admin API. */
  registration_requires_token: z.boolean().default(false),
  /** GET /register/m.login.registration_token/validity per client address (Synapse's key and defaults). */
  rc_registration_token_validity: rateLimit(0.1, 5),
};
