/**
 * Thumbnails with sharp (libvips): which configured size answers a request (Synapse's choice,
 * dynamic_thumbnails off), and the making of one from a file on disk into another.
 */

export type ThumbnailMethod = 'crop' | 'scale';

export interface ThumbnailSize {
  width: number;
  height: number;
  method: ThumbnailMethod;
}

/** The image types thumbnails are made of (Synapse's list). */
export const THUMBNAILABLE_TYPES = new Set(['image/jpeg', 'image/jpg', 'image/webp', 'image/gif', 'image/png']);

/** Thumbnails of JPEGs are JPEGs; of the other images, PNGs (transparency kept), as Synapse makes them. */
export function thumbnailTypeFor(mediaType: string): 'image/jpeg' | 'image/png' {
  return mediaType === 'image/jpeg' || mediaType === 'image/jpg' ? 'image/jpeg' : 'image/png';
}

/**
 * The configured size closest to the request, as Synapse picks among its thumbnails: of those at
 * least as large in one dimension, for crop the closest aspect ratio first, then one at least as
 * large in both, then the least area difference; for scale the least area difference. When none is
 * that large, the same among the smaller ones. Sizes of the other method count only if the
 * requested method has none.
 */
export function chooseThumbnailSize(sizes: readonly ThumbnailSize[], width: number, height: number, method: ThumbnailMethod): ThumbnailSize {
  const sameMethod = sizes.filter((s) => s.method === method);
  const candidates = sameMethod.length > 0 ? sameMethod : sizes;
  const score = (s: ThumbnailSize): number[] => {
    const sizeQuality = Math.abs((width - s.width) * (height - s.height));
    if (s.method !== 'crop' || method !== 'crop') return [sizeQuality];
    const aspectQuality = Math.abs(width * s.height - height * s.width);
    const minQuality = s.width >= width && s.height >= height ? 0 : 1;
    return [aspectQuality, minQuality, sizeQuality];
  };
  const bigEnough = candidates.filter((s) => s.width >= width || s.height >= height);
  const pool = bigEnough.length > 0 ? bigEnough : candidates;
  return pool.reduce((best, s) => (compare(score(s), score(best)) < 0 ? s : best));
}

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

/** The image could not be read (not an image, or a broken one). */
export class UnreadableImageError extends Error {}
/** The image has more pixels than max_image_pixels. */
export class TooManyPixelsError extends Error {}

type Sharp = typeof import('sharp').default;
let sharpModule: Promise<Sharp> | undefined;
// Loaded on the first thumbnail: libvips costs start-up time and memory a server without media never needs.
const loadSharp = () =>
  (sharpModule ??= import('sharp').then(({ default: sharp }) => {
    // Each thumbnail is made once and then read from disk: libvips' operation cache (50 MB by default) would only hold memory.
    sharp.cache(false);
    return sharp;
  }));

/**
 * Makes a thumbnail of the image at `source` into `target`: for crop, exactly width x height (the
 * middle of the image scaled to cover it), for scale, within width x height keeping the aspect
 * ratio; never larger than the image itself. libvips reads the file in strips, so a large image is
 * not held whole in memory.
 */
export async function makeThumbnail(source: string, target: string, size: ThumbnailSize, outputType: 'image/jpeg' | 'image/png', maxPixels: number): Promise<void> {
  const sharp = await loadSharp();
  const image = sharp(source, { limitInputPixels: maxPixels, animated: false, sequentialRead: true });
  let pipeline = image.rotate().resize({
    width: size.width,
    height: size.height,
    fit: size.method === 'crop' ? 'cover' : 'inside',
    withoutEnlargement: true,
  });
  pipeline = outputType === 'image/jpeg' ? pipeline.jpeg({ quality: 80, mozjpeg: false }) : pipeline.png({ compressionLevel: 6 });
  try {
    await pipeline.toFile(target);
  } catch (err) {
    const message = (err as Error).message;
    if (/pixel limit/i.test(message)) throw new TooManyPixelsError(message);
    throw new UnreadableImageError(message);
  }
}

/** The width and height of the image at `path` (read from its header), or undefined when it is no image sharp reads. */
export async function imageSize(path: string, maxPixels: number): Promise<{ width: number; height: number } | undefined> {
  const sharp = await loadSharp();
  try {
    const { width, height } = await sharp(path, { limitInputPixels: maxPixels, animated: false }).metadata();
    return width && height ? { width, height } : undefined;
  } catch {
    return undefined;
  }
}
