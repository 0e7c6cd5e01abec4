import { randomBytes, randomInt, sign as edSign, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createSecretFileOnce } from '../../crypto/secret-file.js';
import { dirname, join } from 'node:path';
import type { Config } from '../../config/index.js';
import { ConfigError } from '../../config/load.js';
import type { JsonObject } from '../../validate.js';
import { decodeBase64, ED25519_KEY_BYTES, privateKeyFromSeed, publicKeyFromRaw, rawPublicKey, unpaddedBase64 } from './ed25519.js';
import { signJson, type JsonSigner } from './event-hash.js';

/**
 * The server's Ed25519 signing key: it signs the events this server creates and the answer of
 * GET /_matrix/key/v2/server. It lives in a file in Synapse's format, one key a line:
 * `ed25519 <version> <unpadded base64 of the 32-byte seed>`, so a Synapse key file can be brought
 * across (and the key keeps verifying the events it signed). The first key signs; every key in the
 * file is published.
 */
export interface ServerSigningKey extends JsonSigner {
  /** `ed25519:<version>`, e.g. `ed25519:a_AbCd`. */
  readonly keyId: string;
  readonly version: string;
  readonly publicKey: KeyObject;
  /** The 32-byte public key in unpadded base64, as published. */
  readonly publicKeyBase64: string;
  sign(data: Uint8Array): Uint8Array;
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
const KEY_VERSION = /^[A-Za-z0-9_]+$/;

/** How long a GET /_matrix/key/v2/server answer says the keys are valid (Synapse's key_refresh_interval default). */
export const KEY_VALIDITY_MS = 24 * 3_600_000;

export function signingKeyFromSeed(version: string, seed: Uint8Array): ServerSigningKey {
  const privateKey = privateKeyFromSeed(seed);
  const publicKey = rawPublicKey(privateKey);
  return {
    keyId: `ed25519:${version}`,
    version,
    publicKey: publicKeyFromRaw(publicKey),
    publicKeyBase64: unpaddedBase64(publicKey),
    sign: (data) => edSign(null, data, privateKey),
  };
}

/** A new key with a Synapse-style version: `a_` and four random letters. */
export function generateSigningKeyLine(): string {
  let version = 'a_';
  for (let i = 0; i < 4; i++) version += LETTERS[randomInt(LETTERS.length)];
  return `ed25519 ${version} ${unpaddedBase64(randomBytes(ED25519_KEY_BYTES))}\n`;
}

/** Reads the keys of a signing key file's text; ConfigError (naming the file and line, never the seed) when malformed. */
export function parseSigningKeyFile(text: string, path: string): ServerSigningKey[] {
  const keys: ServerSigningKey[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const problem = (what: string) => new ConfigError(`signing key file ${path}, line ${i + 1}: ${what}; expected "ed25519 <version> <unpadded base64 seed>" (Synapse's format)`);
    const parts = line.split(/\s+/);
    if (parts.length !== 3) throw problem(`${parts.length} fields`);
    const [algorithm, version, seedText] = parts as [string, string, string];
    if (algorithm !== 'ed25519') throw problem(`unsupported algorithm '${algorithm.slice(0, 20)}'`);
    if (!KEY_VERSION.test(version)) throw problem('the key version may hold only letters, digits and _');
    if (keys.some((k) => k.version === version)) throw problem(`key version '${version}' appears twice`);
    const seed = decodeBase64(seedText);
    if (!seed || seed.length !== ED25519_KEY_BYTES) throw problem(`the seed is not ${ED25519_KEY_BYTES} bytes of base64`);
    keys.push(signingKeyFromSeed(version, seed));
  }
  if (keys.length === 0) throw new ConfigError(`signing key file ${path} holds no key; expected "ed25519 <version> <unpadded base64 seed>" (Synapse's format)`);
  return keys;
}

/**
 * Where the signing key lives: `signing_key_path`, else `<server_name>.signing.key` (Synapse's
 * file name) beside the SQLite database, or under ./data (the default data directory) with
 * PostgreSQL. Undefined for an in-memory SQLite database: its key lives as long as the database.
 */
export function signingKeyPathOf(config: Config): string | undefined {
  if (config.signing_key_path !== undefined) return config.signing_key_path;
  const fileName = `${config.server_name}.signing.key`;
  if (config.database.name === 'sqlite3' || config.database.name === 'sqlite') {
    const database = config.database.args.database;
    return database === ':memory:' ? undefined : join(dirname(database), fileName);
  }
  return join('data', fileName);
}

/**
 * The server's signing keys (the first one signs), read from the key file, which is created
 * (mode 0600) with a new key when missing. Processes starting together on one file agree on one
 * key. ConfigError when the file cannot be read or is malformed.
 */
export function loadSigningKeys(config: Config): ServerSigningKey[] {
  const path = signingKeyPathOf(config);
  if (path === undefined) return parseSigningKeyFile(generateSigningKeyLine(), '(in memory)');
  try {
    if (!existsSync(path)) createSecretFileOnce(path, generateSigningKeyLine());
    return parseSigningKeyFile(readFileSync(path, 'utf8'), path);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`signing_key_path: cannot read or create ${path}: ${(err as Error).message}`);
  }
}


/**
 * The answer of GET /_matrix/key/v2/server (spec server-server-api "Publishing Keys"): every key
 * in `verify_keys`, no old keys, valid for KEY_VALIDITY_MS, signed by each key.
 */
export function serverKeysResponse(serverName: string, keys: readonly ServerSigningKey[], now: number): JsonObject {
  const verifyKeys: Record<string, { key: string }> = {};
  for (const key of keys) verifyKeys[key.keyId] = { key: key.publicKeyBase64 };
  let body: JsonObject = { server_name: serverName, valid_until_ts: now + KEY_VALIDITY_MS, verify_keys: verifyKeys, old_verify_keys: {} };
  for (const key of keys) body = signJson(body, serverName, key);
  return body;
}
