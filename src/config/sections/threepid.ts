import { z } from 'zod';
import { duration } from '../duration.js';
import { rateLimit } from '../schema.js';

const medium = z.enum(['email', 'msisdn']);

/** A regex an admin wrote; checked at start-up so a typo is a config error, not a 500 later. */
const pattern = z.string().refine((p) => {
  try {
    new RegExp(p, 'u');
    return true;
  } catch {
    return false;
  }
}, 'must be a valid regular expression');

/** Keys for third-party identifiers (email addresses, phone numbers), with Synapse's names. */
export const threepidSection = {
  /** Media a new account must validate at registration, e.g. [email]. */
  registrations_require_3pid: z.array(medium).default([]),
  /** When non-empty, only addresses matching one entry (the whole address) may be used. */
  allowed_local_3pids: z.array(z.object({ medium, pattern })).default([]),
  /** Whether users may add and remove 3PIDs on their account. */
  enable_3pid_changes: z.boolean().default(true),
  /** Hide whether an address is known to the homeserver from the requestToken endpoints. */
  request_token_inhibit_3pid_errors: z.boolean().default(false),
  /** Hosts a next_link may point at; unset allows any http(s) host, an empty list none. */
  next_link_domain_whitelist: z.array(z.string().min(1)).nullable().optional(),
  /**
   * Identity servers Myelin may call (to bind and unbind addresses): host names (https) or base
   * URLs (e.g. http://127.0.0.1:8090 for a local one). Myelin verifies addresses itself, so by
   * default none.
   */
  trusted_third_party_id_servers: z.array(z.string().min(1)).default([]),
  /**
   * Myelin: how long a call to an identity server may take, answer included, before it is given
   * up (a client's request then fails; an unbind at deactivation is retried through the outbox).
   */
  identity_server_timeout: duration.refine((ms) => ms > 0, 'must be more than 0').default(5_000),
  /** requestToken calls, per client IP and per address. */
  rc_3pid_validation: rateLimit(0.003, 5),
  /**
   * Myelin: codes (mailed or texted) that may be tried against one address, across all its
   * sessions and client IPs: a bucket of this many, refilled evenly over 24 hours. Each session
   * also allows only 5 tries. When it is used up even the right code waits; a mail's link still works.
   */
  max_code_attempts_per_address_per_day: z.number().int().positive().default(20),
};

/** Full-match test of an address against allowed_local_3pids; an empty list allows everything. */
export function isThreepidAllowed(rules: readonly { medium: string; pattern: string }[], medium: string, address: string): boolean {
  if (rules.length === 0) return true;
  return rules.some((rule) => rule.medium === medium && new RegExp(`^(?:${rule.pattern})$`, 'u').test(address));
}
