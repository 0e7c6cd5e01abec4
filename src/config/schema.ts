import { z } from 'zod';
import { isProxyEntry } from '../http/client-address.js';
import { SUPPORTED_ROOM_VERSIONS } from '../services/rooms/pdu.js';
import { duration } from './duration.js';

/** Synapse's rate-limit shape: a token bucket refilled at per_second, holding burst_count. */
export const rateLimit = (perSecond: number, burstCount: number) =>
  z
    .object({
      per_second: z.number().positive().default(perSecond),
      burst_count: z.number().int().positive().default(burstCount),
    })
    .default({ per_second: perSecond, burst_count: burstCount });
export type RateLimitConfig = z.infer<ReturnType<typeof rateLimit>>;

const listener = z
  .object({
    port: z.number().int().min(0).max(65535),
    bind_addresses: z.array(z.string()).default(['127.0.0.1']),
    /** 'http' (the client API), or 'metrics': Prometheus metrics only, when enable_metrics is on. */
    type: z.string().default('http'),
    tls: z.boolean().default(false),
    /** Take the client's address from X-Forwarded-For, as sent by the proxies in trusted_proxies. */
    x_forwarded: z.boolean().default(false),
    /**
     * Myelin: who may set X-Forwarded-For when x_forwarded is on: addresses, CIDR ranges or the
     * names loopback, linklocal, uniquelocal (default [loopback]: a proxy on this host). Not a hop
     * count: that would believe whoever connects, e.g. a client that reaches the port directly.
     */
    trusted_proxies: z.array(z.string().refine(isProxyEntry, 'must be an IP address, a CIDR range, loopback, linklocal or uniquelocal')).min(1).optional(),
    /** Synapse's resources; `names` including 'metrics' serves /_synapse/metrics here (with enable_metrics). */
    resources: z.array(z.object({ names: z.array(z.string()), compress: z.boolean().optional() })).optional(),
  })
  .refine((l) => l.trusted_proxies === undefined || l.x_forwarded, { message: 'trusted_proxies needs x_forwarded: true', path: ['trusted_proxies'] });

const sqliteDatabase = z.object({
  name: z.enum(['sqlite3', 'sqlite']),
  args: z.object({ database: z.string().default('./data/homeserver.db') }).default({ database: './data/homeserver.db' }),
});

const postgresDatabase = z.object({
  name: z.enum(['psycopg2', 'postgres', 'postgresql']),
  args: z
    .object({
      user: z.string().optional(),
      password: z.string().optional(),
      database: z.string().optional(),
      dbname: z.string().optional(),
      host: z.string().default('127.0.0.1'),
      port: z.number().int().default(5432),
      cp_min: z.number().int().optional(),
      cp_max: z.number().int().positive().default(10),
    })
    .default({ host: '127.0.0.1', port: 5432, cp_max: 10 }),
});

const passwordPolicy = z
  .object({
    enabled: z.boolean().default(false),
    minimum_length: z.number().int().nonnegative().default(0),
    require_digit: z.boolean().default(false),
    require_symbol: z.boolean().default(false),
    require_lowercase: z.boolean().default(false),
    require_uppercase: z.boolean().default(false),
  })
  .default({
    enabled: false,
    minimum_length: 0,
    require_digit: false,
    require_symbol: false,
    require_lowercase: false,
    require_uppercase: false,
  });

const argon2Params = z
  .object({
    memory_cost: z.number().int().min(1024).default(19456),
    time_cost: z.number().int().min(1).default(2),
    parallelism: z.number().int().min(1).default(1),
  })
  .default({ memory_cost: 19456, time_cost: 2, parallelism: 1 });

const passwordConfig = z
  .object({
    enabled: z.union([z.boolean(), z.literal('only_for_reauth')]).default(true),
    localdb_enabled: z.boolean().default(true),
    pepper: z.string().optional(),
    /** Myelin: the hash for new passwords; stored bcrypt and argon2 hashes are both always verified. */
    algorithm: z.enum(['argon2id', 'bcrypt']).default('argon2id'),
    argon2: argon2Params,
    policy: passwordPolicy,
  })
  .prefault({});

export const coreConfigSchema = z.object({
  server_name: z.string().regex(/^[A-Za-z0-9.:[\]-]+$/, 'must be a valid Matrix server name'),
  public_baseurl: z.url({ protocol: /^https?$/ }).optional(),
  listeners: z.array(listener).min(1).default([{ port: 8008, bind_addresses: ['127.0.0.1'], type: 'http', tls: false, x_forwarded: false }]),
  database: z.discriminatedUnion('name', [sqliteDatabase, postgresDatabase]).default({
    name: 'sqlite3',
    args: { database: './data/homeserver.db' },
  }),
  log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * Synapse's key: collect Prometheus metrics, served by a listener of `type: metrics` (at /metrics
   * and /_synapse/metrics) or an http listener whose resources name `metrics` (at /_synapse/metrics).
   */
  enable_metrics: z.boolean().default(false),

  enable_registration: z.boolean().default(false),
  enable_registration_without_verification: z.boolean().default(false),
  registration_shared_secret: z.string().min(1).optional(),
  /** Synapse's name; here the secret the queued messages are encrypted with (the same in every process). */
  macaroon_secret_key: z.string().min(1).optional(),
  allow_guest_access: z.boolean().default(false),
  inhibit_user_in_use_error: z.boolean().default(false),
  bcrypt_rounds: z.number().int().min(4).max(31).default(12),
  password_config: passwordConfig,
  refreshable_access_token_lifetime: duration.default(5 * 60_000),
  refresh_token_lifetime: duration.optional(),
  /**
   * Myelin, PostgreSQL only: how long a process may answer from memory who an access token belongs
   * to (0: never), and for how many tokens. Revocations reach every process at once regardless
   * (services/token-cache.ts).
   */
  access_token_cache: z
    .object({ max_age: duration.default(30_000), max_entries: z.number().int().nonnegative().default(10_000) })
    .prefault({}),
  /** How long an unfinished User-Interactive Auth session lives. */
  ui_auth_session_lifetime: duration.default(24 * 3_600_000),

  rc_login: z
    .object({
      address: rateLimit(0.003, 5),
      account: rateLimit(0.003, 5),
      failed_attempts: rateLimit(0.17, 3),
    })
    .prefault({}),
  rc_registration: rateLimit(0.17, 3),
  /** Myelin: limit on GET /register/available per IP (Synapse hard-codes one). */
  rc_registration_availability: rateLimit(1, 20),
  /** Messages and state events a user may send. */
  rc_message: rateLimit(0.2, 10),
  /** Invites by email address (third-party invites) a user may send: each asks an identity server. */
  rc_third_party_invite: rateLimit(0.2, 10),

  /**
   * The server's Ed25519 signing key, in Synapse's file format (made on first start when missing).
   * Default: `<server_name>.signing.key` beside the SQLite database, or under ./data with PostgreSQL.
   */
  signing_key_path: z.string().min(1).optional(),
  /** The room version of new rooms (Synapse's key; YAML may write it as a number). */
  default_room_version: z
    .union([z.string(), z.number().int()])
    .transform(String)
    .pipe(z.enum(SUPPORTED_ROOM_VERSIONS, { error: `must be one of the supported room versions: ${SUPPORTED_ROOM_VERSIONS.join(', ')}` }))
    .default('11'),

  /** Myelin: largest accepted request body, in bytes. */
  max_request_body_size: z.number().int().positive().default(1024 * 1024),
});

export type CoreConfig = z.infer<typeof coreConfigSchema>;
