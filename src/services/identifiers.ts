import { hashToken } from '../crypto/tokens.js';
import { isObject } from '../validate.js';
import { MatrixError, badJson, forbidden, missingParam } from '../errors.js';
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

function str(dict: Record<string, unknown>, key: string, where: string): string {
  const value = dict[key];
  if (value === undefined) throw missingParam(`${where}${key}`);
  if (typeof value !== 'string') throw badJson(`'${where}${key}' must be a string`);
  return value;
}

/**
 * Reads `identifier` (m.id.user, m.id.thirdparty, m.id.phone) or the legacy top-level `user`,
 * `medium` and `address` fields, as both POST /login and the m.login.password stage accept them.
 */
export async function resolveIdentifier(dict: Record<string, unknown>, accounts: AccountService, store: Store): Promise<Identified> {
  let identifier = dict.identifier as Record<string, unknown> | undefined;
  if (identifier !== undefined && !isObject(identifier)) {
    throw badJson("'identifier' must be an object");
  }
  if (!identifier) {
    if (dict.user !== undefined) identifier = { type: 'm.id.user', user: dict.user };
    else if (dict.medium !== undefined || dict.address !== undefined) {
      identifier = { type: 'm.id.thirdparty', medium: dict.medium, address: dict.address };
    } else throw missingParam('identifier');
  }
  const type = identifier.type;
  if (type === 'm.id.user') {
    const user = str(identifier, 'user', 'identifier.').trim();
    const userId = user.startsWith('@') ? user.toLowerCase() : accounts.userId(user.toLowerCase());
    if (!accounts.isLocal(userId)) return { kind: 'nobody', limitKey: `remote:${hashToken(userId)}` };
    return { kind: 'user', userId };
  }
  if (type === 'm.id.thirdparty' || type === 'm.id.phone') {
    let medium: string;
    let address: string;
    if (type === 'm.id.phone') {
      medium = 'msisdn';
      address = canonicaliseMsisdn(str(identifier, 'country', 'identifier.'), str(identifier, 'phone', 'identifier.')).msisdn;
    } else {
      medium = str(identifier, 'medium', 'identifier.');
      if (medium !== 'email' && medium !== 'msisdn') throw forbidden('Unknown medium');
      address = canonicaliseAddress(medium, str(identifier, 'address', 'identifier.'));
    }
    const userId = await store.threepids.findUser(medium, address);
    return userId ? { kind: 'user', userId } : { kind: 'nobody', limitKey: unknownThreepidKey(medium, address) };
  }
  if (typeof type !== 'string') throw missingParam('identifier.type');
  throw new MatrixError(400, 'M_UNKNOWN', `Unknown identifier type: ${type.slice(0, 100)}`);
}
