import { Readable } from 'node:stream';
import { z } from 'zod';
import { parseQuery } from '../../http/parse.js';
import { StreamReply } from '../../http/reply.js';
import type { AuthedContext, RequestContext, Router } from '../../http/router.js';
import { unrecognized } from '../../errors.js';
import type { Services } from '../../services/index.js';
import type { MediaContent, UploadInput } from '../../services/media/media.js';
import { contentDisposition, isInlineType, mediaHeaders } from './headers.js';

/** The legacy content repository paths (download and thumbnail without authentication, as the spec deprecates them). */
const LEGACY = ['/_matrix/media/v3', '/_matrix/media/r0'] as const;
/** The authenticated media paths (Matrix 1.11). */
const AUTHENTICATED = ['/_matrix/client/v1/media'] as const;

const Int = (min: number) =>
  z
    .string()
    .regex(/^-?\d{1,15}$/, 'must be an integer')
    .transform(Number)
    .refine((n) => n >= min, `must be at least ${min}`);

const DownloadQuery = z.object({ timeout_ms: Int(0).optional() });
const ThumbnailQuery = z.object({
  width: Int(1),
  height: Int(1),
  method: z.enum(['crop', 'scale']).default('scale'),
  timeout_ms: Int(0).optional(),
});
const UploadQuery = z.object({ filename: z.string().max(1024).optional() });
const PreviewQuery = z.object({ url: z.string(), ts: Int(0).optional() });

/** The content repository: uploads, create-then-PUT, downloads, thumbnails, config. */
export function mediaRoutes(router: Router, { media, urlPreviews }: Services): void {
  const uploadInput = (ctx: RequestContext): UploadInput => {
    const { filename } = parseQuery(UploadQuery, ctx.query);
    const length = ctx.headers['content-length'];
    return {
      // Fastify hands no stream over for a request without a body (Content-Length 0, no type).
      body: ctx.body instanceof Readable ? ctx.body : Readable.from([]),
      contentType: ctx.headers['content-type'],
      contentLength: length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined,
      fileName: filename || undefined,
    };
  };

  router.authed('POST', '/upload', async (ctx) => ({ content_uri: await media.upload(ctx.requester.userId, uploadInput(ctx)) }), { prefixes: LEGACY, streamBody: true });
  router.authed(
    'PUT',
    '/upload/:serverName/:mediaId',
    async (ctx) => {
      await media.uploadTo(ctx.requester.userId, ctx.params.serverName!, ctx.params.mediaId!, uploadInput(ctx));
      return {};
    },
    { prefixes: LEGACY, streamBody: true },
  );
  router.authed('POST', '/create', async ({ requester }) => media.create(requester.userId), { prefixes: ['/_matrix/media/v1'] });

  const download = async ({ params, query }: RequestContext) => {
    const { timeout_ms } = parseQuery(DownloadQuery, query);
    const content = await media.download(params.serverName!, params.mediaId!, timeout_ms);
    const fileName = params.fileName ?? content.uploadName;
    return streamed(content, contentDisposition(isInlineType(content.mediaType) ? 'inline' : 'attachment', fileName));
  };
  const thumbnail = async ({ params, query }: RequestContext) => {
    const { width, height, method, timeout_ms } = parseQuery(ThumbnailQuery, query);
    const content = await media.thumbnail(params.serverName!, params.mediaId!, width, height, method, timeout_ms);
    return streamed(content, contentDisposition('inline', content.mediaType === 'image/jpeg' ? 'thumbnail.jpg' : 'thumbnail.png'));
  };
  const config = async () => media.uploadConfig();

  for (const path of ['/download/:serverName/:mediaId', '/download/:serverName/:mediaId/:fileName']) {
    router.public('GET', path, download, { prefixes: LEGACY });
    router.authed('GET', path, download, { prefixes: AUTHENTICATED });
  }
  router.public('GET', '/thumbnail/:serverName/:mediaId', thumbnail, { prefixes: LEGACY });
  router.authed('GET', '/thumbnail/:serverName/:mediaId', thumbnail, { prefixes: AUTHENTICATED });
  router.authed('GET', '/config', config, { prefixes: [...LEGACY, ...AUTHENTICATED] });

  // URL previews. Off (Synapse's default), the authenticated path is not served at all and the
  // legacy one answers 400 M_UNRECOGNIZED to an authenticated request, as Synapse answers both.
  const preview = async ({ requester, query }: AuthedContext) => {
    if (!urlPreviews.enabled) throw unrecognized(400);
    const { url, ts } = parseQuery(PreviewQuery, query);
    return urlPreviews.preview(requester.userId, url, ts);
  };
  router.authed('GET', '/preview_url', preview, { prefixes: [...LEGACY, '/_matrix/media/v1'] });
  if (urlPreviews.enabled) router.authed('GET', '/preview_url', preview, { prefixes: AUTHENTICATED });
}

function streamed(content: MediaContent, disposition: string): StreamReply {
  return new StreamReply(200, content.stream, mediaHeaders(content.mediaType, content.size, disposition));
}
