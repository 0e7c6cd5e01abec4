/**
 * The headers media are served with: what keeps an uploaded file from acting as a page of this
 * origin (a sandboxing Content-Security-Policy, nosniff, and `inline` only for the spec's safe
 * types), caching, and a correctly encoded file name.
 */

/** Types a browser may show in place (the spec's "serving inline content" list, as Synapse's). */
const INLINE_TYPES = new Set([
  'text/css',
  'text/plain',
  'text/csv',
  'application/json',
  'application/ld+json',
  'image/jpeg',
  'image/gif',
  'image/png',
  'image/apng',
  'image/webp',
  'image/avif',
  'video/mp4',
  'video/webm',
  'video/ogg',
  'video/quicktime',
  'audio/mp4',
  'audio/webm',
  'audio/aac',
  'audio/mpeg',
  'audio/ogg',
  'audio/wave',
  'audio/wav',
  'audio/x-wav',
  'audio/x-pn-wav',
  'audio/flac',
  'audio/x-flac',
]);

const MEDIA_CSP = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';";

export function isInlineType(mediaType: string): boolean {
  return INLINE_TYPES.has(baseType(mediaType));
}

function baseType(mediaType: string): string {
  return mediaType.split(';')[0]!.trim().toLowerCase();
}

/**
 * `inline` or `attachment`, with the file name: quoted when it is printable ASCII without quote or
 * backslash, else RFC 5987's `filename*=utf-8''...` (percent-encoded UTF-8), which no character of
 * the name can break out of.
 */
export function contentDisposition(disposition: 'inline' | 'attachment', fileName: string | null | undefined): string {
  if (!fileName) return disposition;
  if (/^[\x20-\x7e]*$/.test(fileName) && !/["\\]/.test(fileName)) return `${disposition}; filename="${fileName}"`;
  const encoded = encodeURIComponent(fileName).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${disposition}; filename*=utf-8''${encoded}`;
}

/** The headers of a download or thumbnail answer. */
export function mediaHeaders(mediaType: string, size: number, disposition: string): Record<string, string> {
  let contentType = mediaType;
  // A text file without a charset would be sniffed by browsers; Synapse says UTF-8.
  if (baseType(mediaType).startsWith('text/') && !/;\s*charset=/i.test(mediaType)) contentType = `${mediaType}; charset=UTF-8`;
  return {
    'content-type': contentType,
    'content-length': String(size),
    'content-disposition': disposition,
    'content-security-policy': MEDIA_CSP,
    'x-content-type-options': 'nosniff',
    'cross-origin-resource-policy': 'cross-origin',
    'cache-control': 'public, max-age=86400, s-maxage=86400',
    'x-robots-tag': 'noindex, nofollow, noarchive, noimageindex',
  };
}
