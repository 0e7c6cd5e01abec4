import { canonicalJson } from '../rooms/canonical-json.js';
import { verifyEd25519Signature } from '../rooms/event-hash.js';

export { canonicalJson };

/**
 * What a signature covers: the canonical JSON of the object without `signatures` and `unsigned`.
 * M_BAD_JSON when the object holds what canonical JSON forbids (a float, an integer beyond 2^53).
 */
export function signedPart(object: Record<string, unknown>): string {
  const { signatures: _s, unsigned: _u, ...rest } = object;
  return canonicalJson(rest);
}

/**
 * True when `signature` (unpadded base64) is a valid Ed25519 signature of the object by `publicKey`
 * (unpadded base64); false for a malformed key or signature, or an object canonical JSON cannot encode.
 */
export function verifyEd25519(object: Record<string, unknown>, publicKey: string, signature: string): boolean {
  return verifyEd25519Signature(object, signature, publicKey);
}
