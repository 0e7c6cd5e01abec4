import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';

/**
 * Raw Ed25519 keys (32-byte seeds and public keys, as Matrix writes them in unpadded base64) to and
 * from node:crypto key objects, and the base64 forms Matrix uses.
 */

// DER prefixes of a PKCS#8 Ed25519 private key and an SPKI Ed25519 public key; the raw 32 bytes follow.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export const ED25519_KEY_BYTES = 32;
export const ED25519_SIGNATURE_BYTES = 64;

/** The private key whose seed is these 32 bytes. */
export function privateKeyFromSeed(seed: Uint8Array): KeyObject {
  if (seed.length !== ED25519_KEY_BYTES) throw new Error(`an Ed25519 seed has ${ED25519_KEY_BYTES} bytes, not ${seed.length}`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** The public key with these 32 raw bytes. */
export function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== ED25519_KEY_BYTES) throw new Error(`an Ed25519 public key has ${ED25519_KEY_BYTES} bytes, not ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** The 32 raw bytes of a public key (or of the public half of a private key). */
export function rawPublicKey(key: KeyObject): Buffer {
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return spki.subarray(spki.length - ED25519_KEY_BYTES);
}

/** Matrix's unpadded base64 (standard alphabet). */
export function unpaddedBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64').replace(/=+$/, '');
}

/** URL-safe unpadded base64, as in v4+ event IDs. */
export function urlSafeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/**
 * Decodes standard base64, unpadded (as Matrix sends it) or padded; undefined for anything else,
 * including a length no encoding produces. Stray bits in the last character are ignored, as other
 * implementations ignore them (the spec's own test seed has some).
 */
export function decodeBase64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  const bare = text.replace(/=+$/, '');
  if (bare.length % 4 === 1) return undefined;
  if (text.length !== bare.length && text.length % 4 !== 0) return undefined;
  return Buffer.from(bare, 'base64');
}
