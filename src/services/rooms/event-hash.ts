import { createHash, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { isObject, type JsonObject } from '../../validate.js';
import { canonicalJson } from './canonical-json.js';
import { decodeBase64, ED25519_SIGNATURE_BYTES, publicKeyFromRaw, unpaddedBase64, urlSafeBase64 } from './ed25519.js';
import type { Pdu } from './pdu.js';
import { redactEvent } from './redaction.js';

/**
 * Hashes, IDs and signatures of events (spec server-server-api.md "Signing Events", appendices
 * "Signing JSON", rooms/fragments/v4-event-ids.md).
 */

/** Something that signs with an Ed25519 key: the server's key (signing-key.ts) or a test key. */
export interface JsonSigner {
  /** `ed25519:<version>`. */
  readonly keyId: string;
  /** The 64-byte Ed25519 signature of `data`. */
  sign(data: Uint8Array): Uint8Array;
}

export type Signatures = Record<string, Record<string, string>>;

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function without(object: object, ...keys: string[]): JsonObject {
  const out: JsonObject = { ...(object as JsonObject) };
  for (const key of keys) delete out[key];
  return out;
}

/** The content hash: SHA-256 of the event's canonical JSON without `unsigned`, `signatures` and `hashes`, in unpadded base64. */
export function contentHash(event: object): string {
  return unpaddedBase64(sha256(canonicalJson(without(event, 'unsigned', 'signatures', 'hashes'))));
}

/** True when the event's `hashes.sha256` is its content hash (false when it has none). */
export function hasValidContentHash(event: object): boolean {
  const hashes = (event as JsonObject).hashes;
  if (!isObject(hashes) || typeof hashes.sha256 !== 'string') return false;
  try {
    return hashes.sha256.replace(/=+$/, '') === contentHash(event);
  } catch {
    return false; // not canonical JSON: no hash can match
  }
}

/** The reference hash: SHA-256 of the redacted event's canonical JSON without `signatures` and `unsigned`. */
export function referenceHash(event: object, version: string): Buffer {
  return sha256(canonicalJson(without(redactEvent(event as JsonObject, version), 'signatures', 'unsigned')));
}

/** The event ID in room versions 4 and later: `$` and the reference hash in URL-safe unpadded base64. */
export function eventIdOf(event: object, version: string): string {
  return `$${urlSafeBase64(referenceHash(event, version))}`;
}

/** What a signature covers: the canonical JSON of the object without `signatures` and `unsigned`. */
export function signedBytes(object: object): Buffer {
  return Buffer.from(canonicalJson(without(object, 'signatures', 'unsigned')), 'utf8');
}

/**
 * Signs a JSON object (appendices "Signing JSON"): a copy of it with the signature added under
 * `signatures[signerName][key.keyId]`, other signatures and `unsigned` kept. The object itself is
 * not changed.
 */
export function signJson<T extends object>(object: T, signerName: string, key: JsonSigner): T & { signatures: Signatures } {
  const signature = unpaddedBase64(key.sign(signedBytes(object)));
  return { ...object, signatures: addSignature((object as JsonObject).signatures, signerName, key.keyId, signature) };
}

function addSignature(existing: unknown, signerName: string, keyId: string, signature: string): Signatures {
  const signatures: Signatures = {};
  if (isObject(existing)) {
    for (const [name, byKey] of Object.entries(existing)) if (isObject(byKey)) signatures[name] = { ...(byKey as Record<string, string>) };
  }
  signatures[signerName] = { ...signatures[signerName], [keyId]: signature };
  return signatures;
}

/**
 * True when `object` carries a valid signature by `signerName` under `keyId`, made with
 * `publicKey` (unpadded base64 of the 32 raw bytes, or a key object). False, never an exception,
 * for a missing or malformed signature or key, or an object canonical JSON cannot encode.
 */
export function verifyJsonSignature(object: object, signerName: string, keyId: string, publicKey: string | KeyObject): boolean {
  const signatures = (object as JsonObject).signatures;
  if (!isObject(signatures) || !Object.hasOwn(signatures, signerName)) return false;
  const bySigner = signatures[signerName];
  if (!isObject(bySigner) || !Object.hasOwn(bySigner, keyId)) return false;
  const signature = bySigner[keyId];
  return typeof signature === 'string' && verifyEd25519Signature(object, signature, publicKey);
}

/** True when `signature` (unpadded base64) is a valid Ed25519 signature of `object`'s signed part. */
export function verifyEd25519Signature(object: object, signature: string, publicKey: string | KeyObject): boolean {
  const sig = decodeBase64(signature);
  if (!sig || sig.length !== ED25519_SIGNATURE_BYTES) return false;
  try {
    let key: KeyObject;
    if (typeof publicKey === 'string') {
      const raw = decodeBase64(publicKey);
      if (!raw) return false;
      key = publicKeyFromRaw(raw);
    } else {
      key = publicKey;
    }
    return edVerify(null, signedBytes(object), key, sig);
  } catch {
    return false;
  }
}

/** An event before hashing and signing: a PDU whose `hashes` and `signatures` may be absent. */
export type UnsignedPdu = Omit<Pdu, 'hashes' | 'signatures'> & Partial<Pick<Pdu, 'hashes' | 'signatures'>>;

/**
 * Hashes and signs an event (server-server-api.md "Adding hashes and signatures to outgoing
 * events"): sets `hashes.sha256` to the content hash, signs the redacted event, and puts that
 * signature into the full event's `signatures[serverName][key.keyId]`. Returns a new object;
 * `unsigned` is kept. The event ID (`eventIdOf`) is computed from the result.
 */
export function hashAndSignEvent<T extends UnsignedPdu>(event: T, version: string, serverName: string, key: JsonSigner): T & Pdu {
  const hashed = { ...event, hashes: { sha256: contentHash(event) } };
  const signature = unpaddedBase64(key.sign(signedBytes(redactEvent(hashed as JsonObject, version))));
  return { ...hashed, signatures: addSignature(event.signatures, serverName, key.keyId, signature) } as T & Pdu;
}

/**
 * hashAndSignEvent and eventIdOf at once. The signature and the reference hash cover the same bytes
 * (the redacted event's canonical JSON without `signatures` and `unsigned`: the signature added is
 * outside it), so the event is redacted and serialised for them once.
 */
export function hashSignAndIdentify<T extends UnsignedPdu>(event: T, version: string, serverName: string, key: JsonSigner): { pdu: T & Pdu; eventId: string } {
  const hashed = { ...event, hashes: { sha256: contentHash(event) } };
  const bytes = signedBytes(redactEvent(hashed as JsonObject, version));
  const signature = unpaddedBase64(key.sign(bytes));
  const pdu = { ...hashed, signatures: addSignature(event.signatures, serverName, key.keyId, signature) } as T & Pdu;
  return { pdu, eventId: `$${urlSafeBase64(createHash('sha256').update(bytes).digest())}` };
}

/** True when the event carries a valid signature of its redacted form by `serverName`'s `keyId`. */
export function verifyEventSignature(event: object, version: string, serverName: string, keyId: string, publicKey: string | KeyObject): boolean {
  let redacted: JsonObject;
  try {
    redacted = redactEvent(event as JsonObject, version);
  } catch {
    return false;
  }
  return verifyJsonSignature(redacted, serverName, keyId, publicKey);
}

/** A JsonSigner for a node:crypto Ed25519 private key. */
export function ed25519Signer(keyId: string, privateKey: KeyObject): JsonSigner {
  return { keyId, sign: (data) => edSign(null, data, privateKey) };
}
