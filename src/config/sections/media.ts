import { z } from 'zod';
import { duration } from '../duration.js';
import { rateLimit } from '../schema.js';

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
};
