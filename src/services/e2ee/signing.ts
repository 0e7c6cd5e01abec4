import { createPublicKey, verify } from 'node:crypto';

/** The spec's canonical JSON: object keys sorted, no insignificant whitespace. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value as Record<string, unknown>)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

/** What a signature covers: the object without `signatures` and `unsigned`. */
export function signedPart(object: Record<string, unknown>): string {
  const { signatures: _s, unsigned: _u, ...rest } = object;
  return canonicalJson(rest);
}

// DER prefix of an SPKI-wrapped Ed25519 public key; the raw 32 bytes follow.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function unpaddedBase64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  return Buffer.from(text, 'base64');
}

/** True when `signature` (unpadded base64) is a valid Ed25519 signature of the object by `publicKey`. */
export function verifyEd25519(object: Record<string, unknown>, publicKey: string, signature: string): boolean {
  const key = unpaddedBase64(publicKey);
  const sig = unpaddedBase64(signature);
  if (!key || key.length !== 32 || !sig || sig.length !== 64) return false;
  try {
    const spki = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, key]), format: 'der', type: 'spki' });
    return verify(null, Buffer.from(signedPart(object), 'utf8'), spki, sig);
  } catch {
    return false;
  }
}
