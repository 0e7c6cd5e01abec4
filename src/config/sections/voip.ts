import { z } from 'zod';
import { duration } from '../duration.js';

/** TURN server settings for GET /voip/turnServer, with Synapse's key names. */
export const voipSection = {
  turn_uris: z.array(z.string().regex(/^turns?:/, 'must be a turn: or turns: URI')).default([]),
  /** Shared secret for the TURN REST API (coturn's static-auth-secret): time-limited HMAC credentials. */
  turn_shared_secret: z.string().min(1).optional(),
  /** Fixed credentials, used when there is no shared secret. */
  turn_username: z.string().optional(),
  turn_password: z.string().optional(),
  turn_user_lifetime: duration.default(3_600_000),
  turn_allow_guests: z.boolean().default(true),
};
