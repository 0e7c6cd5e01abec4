import { z } from 'zod';
import { duration } from '../duration.js';
import { rateLimit } from '../schema.js';
import { isCidr } from '../../services/media/ip-ranges.js';

const SIZE_UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** Parses a Synapse-style size: a number of bytes, or a string such as "50M", "10K", "1G" (powers of 1024, as Synapse). */
export function parseSize(value: number | string): number {
  if (typeof value === 'number') return value;
  const match = /^\s*(\d+)\s*([KMGT]?)B?\s*$/i.exec(value);
  if (!match) throw new Error(`not a size: ${JSON.stringify(value)} (expected e.g. 50M, 512K, 1G)`);
  return Number(match[1]) * SIZE_UNITS[match[2]!.toUpperCase()]!;
}

const size = z.union([z.number().int().nonnegative(), z.string()]).transform((value, ctx) => {
  try {
    return parseSize(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const thumbnailSize = z.object({
  width: z.number().int().positive().max(10_000),
  height: z.number().int().positive().max(10_000),
  method: z.enum(['crop', 'scale']),
});

/** Synapse's default thumbnail_sizes. */
export const DEFAULT_THUMBNAIL_SIZES = [
  { width: 32, height: 32, method: 'crop' },
  { width: 96, height: 96, method: 'crop' },
  { width: 320, height: 240, method: 'scale' },
  { width: 640, height: 480, method: 'scale' },
  { width: 800, height: 600, method: 'scale' },
] as const;

/**
 * The ranges URL previews never fetch from unless whitelisted: Synapse's recommended
 * url_preview_ip_range_blacklist (loopback, private, carrier-grade NAT, link-local, documentation
 * and benchmarking networks, multicast, IPv6 unique-local and site-local), plus "this network" and
 * the broadcast address. 0.0.0.0 and :: are refused whatever the configuration says, as Synapse does.
 */
export const DEFAULT_URL_PREVIEW_IP_RANGE_BLACKLIST = [
  '127.0.0.0/8',
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '100.64.0.0/10',
  '192.0.0.0/24',
  '169.254.0.0/16',
  '192.88.99.0/24',
  '198.18.0.0/15',
  '192.0.2.0/24',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '0.0.0.0/8',
  '255.255.255.255/32',
  '::1/128',
  'fe80::/10',
  'fc00::/7',
  '2001:db8::/32',
  'ff00::/8',
  'fec0::/10',
];

const ipRange = z.string().refine(isCidr, 'must be an IP address or a CIDR range');
/** A url_preview_url_blacklist entry: URL parts (scheme, netloc, hostname, port, path, query, fragment, username, password) to glob patterns, or regular expressions when starting with ^. */
const urlPattern = z.partialRecord(
  z.enum(['scheme', 'netloc', 'hostname', 'port', 'path', 'params', 'query', 'fragment', 'username', 'password']),
  z.string().refine((pattern) => !pattern.startsWith('^') || compiles(pattern), 'must be a valid regular expression'),
);

function compiles(pattern: string): boolean {
  try {
    new RegExp(pattern);
    return true;
  } catch {
    return false;
  }
}

/** The content repository (media), with Synapse's key names and defaults. */
export const mediaSection = {
  /** Where uploaded files and their thumbnails are kept; default `media_store` beside the SQLite database, or ./data/media_store. */
  media_store_path: z.string().min(1).optional(),
  /** The largest upload accepted (Synapse's default 50M). */
  max_upload_size: size.default(50 * 1024 * 1024),
  /** Images with more pixels than this are not thumbnailed (Synapse's default 32M). */
  max_image_pixels: size.default(32 * 1024 * 1024),
  dynamic_thumbnails: z.boolean().default(false),
  thumbnail_sizes: z.array(thumbnailSize).min(1).default(DEFAULT_THUMBNAIL_SIZES.map((s) => ({ ...s }))),
  /** Requests to create a media ID or upload, per user (Synapse's rc_media_create; Myelin counts uploads too). */
  rc_media_create: rateLimit(10, 50),
  /** Bytes a user may upload within each time period (Synapse's media_upload_limits; none by default). */
  media_upload_limits: z.array(z.object({ time_period: duration, max_size: size })).default([]),
  /** How many created media IDs a user may hold without content yet (Synapse's max_pending_media_uploads). */
  max_pending_media_uploads: z.number().int().positive().default(5),
  /** How long a created media ID waits for its content (Synapse's unused_expiration_time). */
  unused_expiration_time: duration.default(24 * 3_600_000),
  /** GET /preview_url (Synapse's default: off; the endpoint is then unknown). */
  url_preview_enabled: z.boolean().default(false),
  /**
   * Addresses previews may not fetch from. Synapse requires the key when previews are on; Myelin
   * defaults to Synapse's recommended list. An empty list blocks nothing beyond 0.0.0.0 and ::.
   */
  url_preview_ip_range_blacklist: z.array(ipRange).default(DEFAULT_URL_PREVIEW_IP_RANGE_BLACKLIST),
  /** Addresses previews may fetch from even when blacklisted. */
  url_preview_ip_range_whitelist: z.array(ipRange).default([]),
  /** URLs never previewed: each entry's URL parts must all match for a URL to be refused. */
  url_preview_url_blacklist: z.array(urlPattern).default([]),
  /** The largest page or image a preview downloads (Synapse's default 10M). */
  max_spider_size: size.default(10 * 1024 * 1024),
  /** The Accept-Language header of preview requests (Synapse's default: en). */
  url_preview_accept_language: z.array(z.string().regex(/^[\x20-\x7e]+$/, 'must be printable ASCII')).min(1).default(['en']),
};
