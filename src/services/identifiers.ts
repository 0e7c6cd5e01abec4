import { hashToken } from '../crypto/tokens.js';
import { forbidden } from '../errors.js';
import type { LoginIdentifier } from '../http/common-schemas.js';
import type { Store } from '../storage/index.js';
import type { AccountService } from './accounts.js';
import { canonicaliseAddress, canonicaliseMsisdn } from './threepid/address.js';

/** Who a login or a password stage names, before any password is checked. */
export type Identified =
  | { kind: 'user'; userId: string }
  /**
   * A 3PID no account holds, or a user ID of another server: the password check fails the same way
   * as a wrong password. `limitKey` is what per-account limits count it under, one bucket per
   * identifier as an account has, so that the limits do not tell known and unknown apart.
   */
  | { kind: 'nobody'; limitKey: string };

/** The limit key of an unknown 3PID: a hash, so that addresses typed at random are not kept in clear. */
function unknownThreepidKey(medium: string, address: string): string {
  return `3pid:${medium}:${hashToken(`${medium}:${address}`)}`;
}

/**
 * Who an identifier (m.id.user, m.id.thirdparty, m.id.phone) names, as both POST /login and the
 * m.login.password stage read it.
 */
export async function resolveIdentifier(identifier: LoginIdentifier, accounts: AccountService, store: Store): Promise<Identified> {
  if (identifier.type === 'm.id.user') {
    const user = identifier.user.trim();
    const userId = user.startsWith('@') ? user.toLowerCase() : accounts.userId(user.toLowerCase());
    if (!accounts.isLocal(userId)) return { kind: 'nobody', limitKey: `remote:${hashToken(userId)}` };
    return { kind: 'user', userId };
  }
  let medium: string;
  let address: string;
  if (identifier.type === 'm.id.phone') {
    medium = 'msisdn';
    address = canonicaliseMsisdn(identifier.country, identifier.phone).msisdn;
  } else {
    medium = identifier.medium;
    if (medium !== 'email' && medium !== 'msisdn') throw forbidden('Unknown medium');
    address = canonicaliseAddress(medium, identifier.address);
  }
  const userId = await store.threepids.findUser(medium, address);
  return userId ? { kind: 'user', userId } : { kind: 'nobody', limitKey: unknownThreepidKey(medium, address) };
}
