import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createSecretFileOnce } from '../crypto/secret-file.js';
import type { Config } from '../config/index.js';
import { ConfigError } from '../config/load.js';

/**
 * A queued message holds its link token, code and client secret until it is sent, and the session
 * row holds only their hashes, so the secrets cannot be minted again at send time (the code's hash
 * is keyed by the client secret, which the server keeps only hashed; and a retry after an SMTP
 * failure that the server had in fact accepted would mint a second link and kill the first). So
 * the payload is encrypted at rest instead (AES-256-GCM, the row's ID as associated data), with a
 * key that is not in the database: derived from `macaroon_secret_key` (else
 * `registration_shared_secret`, as Synapse falls back for its macaroon key), or, on SQLite
 * without either, from a key file generated next to the database file.
 */
const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class PayloadSeal {
  private constructor(private readonly key: Buffer) {}

  static fromSecret(secret: string | Buffer): PayloadSeal {
    return new PayloadSeal(Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), 'myelin outbox payload', 32)));
  }

  /** The seal of this configuration; throws ConfigError when several processes could not agree on one. */
  static forConfig(config: Config): PayloadSeal {
    return PayloadSeal.fromSecret(deliverySecret(config));
  }

  seal(id: string, plaintext: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(id));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${VERSION}.${iv.toString('base64url')}.${body.toString('base64url')}`;
  }

  /** The plaintext of a sealed payload; a payload queued before sealing existed (plain JSON) as it is. */
  open(id: string, stored: string): string {
    if (stored.startsWith('{')) return stored;
    const [version, iv, body] = stored.split('.');
    if (version !== VERSION || iv === undefined || body === undefined) throw new Error('stored message is sealed in an unknown format');
    const data = Buffer.from(body, 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(id));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    return Buffer.concat([decipher.update(data.subarray(0, data.length - TAG_BYTES)), decipher.final()]).toString('utf8');
  }
}

/**
 * The secret that delivery's keys derive from (each with its own HKDF label): the same in every
 * process; throws ConfigError when several processes could not agree on one.
 */
export function deliverySecret(config: Config): string | Buffer {
  const secret = config.macaroon_secret_key ?? config.registration_shared_secret;
  if (secret !== undefined) return secret;
  if (config.database.name === 'sqlite3' || config.database.name === 'sqlite') {
    const path = config.database.args.database;
    return path === ':memory:' ? randomBytes(32) : keyFile(`${path}.outbox-key`);
  }
  throw new ConfigError('macaroon_secret_key: required with PostgreSQL when email, sms or trusted_third_party_id_servers is configured (the same in every process), to encrypt queued messages');
}

/** The key in `path`, created (owner-only) when absent; processes starting together agree on one. */
function keyFile(path: string): Buffer {
  if (!existsSync(path)) createSecretFileOnce(path, randomBytes(32).toString('base64'));
  return Buffer.from(readFileSync(path, 'utf8').trim(), 'base64');
}
