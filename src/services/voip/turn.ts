import { createHmac } from 'node:crypto';
import type { Config } from '../../config/index.js';
import { forbidden } from '../../errors.js';

/**
 * TURN credentials: with a shared secret, the TURN REST API's time-limited ones (username
 * "<expiry>:<user>", password the base64 HMAC-SHA1 of it); else the fixed pair; {} when there is no
 * TURN server, as Synapse answers.
 */
export function turnCredentials(config: Config, userId: string, isGuest: boolean, now: number): Record<string, unknown> {
  if (config.turn_uris.length === 0) return {};
  if (isGuest && !config.turn_allow_guests) throw forbidden('Guests may not use the TURN server');
  const ttl = Math.floor(config.turn_user_lifetime / 1000);
  if (config.turn_shared_secret) {
    const username = `${Math.floor(now / 1000) + ttl}:${userId}`;
    const password = createHmac('sha1', config.turn_shared_secret).update(username).digest('base64');
    return { username, password, uris: config.turn_uris, ttl };
  }
  if (config.turn_username !== undefined && config.turn_password !== undefined) {
    return { username: config.turn_username, password: config.turn_password, uris: config.turn_uris, ttl };
  }
  return {};
}
