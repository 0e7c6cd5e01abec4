import { randomInt } from 'node:crypto';
import { unlink } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { ReadStream } from 'node:fs';
import type { Clock } from '../../clock.js';
import type { Config } from '../../config/index.js';
import { MatrixError, forbidden, limitExceeded, notFound } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import type { LocalMediaRow } from '../../storage/media.js';
import type { RateLimiter } from '../ratelimiter.js';
import { FileStore, MEDIA_ID, TooLargeError } from './file-store.js';
import {
  THUMBNAILABLE_TYPES,
  TooManyPixelsError,
  UnreadableImageError,
  chooseThumbnailSize,
  makeThumbnail,
  thumbnailTypeFor,
  type ThumbnailMethod,
  type ThumbnailSize,
} from './thumbnailer.js';

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** A download of a medium whose content is still to come waits at most this long (the spec's timeout_ms, bounded). */
export const MAX_WAIT_MS = 60_000;
export const DEFAULT_WAIT_MS = 20_000;
const POLL_MS = 250;
/** How long a medium fetched for a URL preview is kept (Synapse's IMAGE_CACHE_EXPIRY_MS). */
export const URL_CACHE_MEDIA_MS = 2 * 24 * 3_600_000;

const tooLarge = (limit: number) => new MatrixError(413, 'M_TOO_LARGE', `Uploads may be at most ${limit} bytes`);
const unknownMedia = () => notFound('Unknown media');
const notYetUploaded = () => new MatrixError(504, 'M_NOT_YET_UPLOADED', 'The content has not been uploaded yet');

export interface UploadInput {
  body: Readable;
  /** The Content-Type header; application/octet-stream when absent. */
  contentType: string | undefined;
  /** The Content-Length header, when the client sent one. */
  contentLength: number | undefined;
  fileName: string | undefined;
}

/** A medium's content, ready to stream. */
export interface MediaContent {
  stream: ReadStream;
  size: number;
  mediaType: string;
  uploadName: string | null;
}

/**
 * The content repository: uploads (at once, or to an ID created first), downloads and thumbnails
 * of local media, with the bytes on disk (FileStore) and the metadata in the database. There is
 * no federation, so media of other servers are never found.
 */
export class MediaService {
  /** Thumbnails being made in this process, so that concurrent requests for one make it once. */
  private readonly making = new Map<string, Promise<void>>();

  constructor(
    private readonly store: Store,
    readonly files: FileStore,
    private readonly config: Config,
    private readonly clock: Clock,
    private readonly limiter: RateLimiter,
  ) {}

  get serverName(): string {
    return this.config.server_name;
  }

  uploadConfig(): Record<string, unknown> {
    return { 'm.upload.size': this.config.max_upload_size };
  }

  /** POST /upload: stores the body under a new media ID and returns its mxc:// URI. */
  async upload(userId: string, input: UploadInput): Promise<string> {
    await this.admitUpload(userId, input.contentLength);
    const { temp, bytes } = await this.receive(userId, input);
    const mediaId = await this.keep(userId, temp, bytes, mediaTypeOf(input.contentType), input.fileName ?? null);
    return `mxc://${this.serverName}/${mediaId}`;
  }

  /**
   * Stores a file fetched from `url` for a URL preview (a temporary file of `files`, taken over) as a
   * local medium of the user who asked for the preview, as Synapse keeps them, until pruneUrlCache
   * deletes it. No quota or rate limit here: the preview is limited as a whole.
   */
  async storeFetched(userId: string, url: string, temp: string, bytes: number, contentType: string, fileName: string | null): Promise<{ contentUri: string; mediaType: string; path: string }> {
    const mediaType = mediaTypeOf(contentType);
    const mediaId = await this.keep(userId, temp, bytes, mediaType, fileName, url);
    const path = this.files.contentPath(mediaId);
    return { contentUri: `mxc://${this.serverName}/${mediaId}`, mediaType, path };
  }

  /** Takes a received temporary file over as a new local medium: its file, then its row (undone together). */
  private async keep(userId: string, temp: string, bytes: number, mediaType: string, fileName: string | null, urlCache: string | null = null): Promise<string> {
    const now = this.clock.now();
    const mediaId = newMediaId();
    try {
      await this.files.commit(temp, this.files.contentPath(mediaId));
      await this.store.media.insert({
        media_id: mediaId,
        user_id: userId,
        created_ts: now,
        media_type: mediaType,
        upload_name: fileName,
        media_length: bytes,
        uploaded_ts: now,
        unused_expires_ts: null,
        quarantined_by: null,
        url_cache: urlCache,
      });
    } catch (err) {
      await this.files.discard(temp);
      await this.files.remove(mediaId);
      throw err;
    }
    return mediaId;
  }

  /** POST /media/v1/create: a new media ID whose content comes later by PUT. */
  async create(userId: string): Promise<{ content_uri: string; unused_expires_at: number }> {
    await this.limiter.take(`media_create:${userId}`, this.config.rc_media_create);
    const now = this.clock.now();
    if ((await this.store.media.pendingCount(userId, now)) >= this.config.max_pending_media_uploads) throw limitExceeded(60_000);
    const mediaId = newMediaId();
    const expires = now + this.config.unused_expiration_time;
    await this.store.media.insert({
      media_id: mediaId,
      user_id: userId,
      created_ts: now,
      media_type: null,
      upload_name: null,
      media_length: null,
      uploaded_ts: null,
      unused_expires_ts: expires,
      quarantined_by: null,
      url_cache: null,
    });
    return { content_uri: `mxc://${this.serverName}/${mediaId}`, unused_expires_at: expires };
  }

  /** PUT /upload/{serverName}/{mediaId}: the content of an ID created earlier by the same user. */
  async uploadTo(userId: string, serverName: string, mediaId: string, input: UploadInput): Promise<void> {
    const row = await this.localRow(serverName, mediaId);
    if (!row) throw unknownMedia();
    if (row.user_id !== userId) throw forbidden('This media ID was created by another user');
    if (row.uploaded_ts !== null) throw new MatrixError(409, 'M_CANNOT_OVERWRITE_MEDIA', 'Media already uploaded');
    if (row.unused_expires_ts === null || row.unused_expires_ts <= this.clock.now()) throw unknownMedia();
    await this.admitUpload(userId, input.contentLength);
    const { temp, bytes } = await this.receive(userId, input);
    const target = this.files.contentPath(mediaId);
    try {
      await this.files.commitExclusive(temp, target);
    } catch (err) {
      await this.files.discard(temp);
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new MatrixError(409, 'M_CANNOT_OVERWRITE_MEDIA', 'Media already uploaded');
      throw err;
    }
    const completed = await this.store.media.completeCreated(mediaId, userId, {
      media_type: mediaTypeOf(input.contentType),
      upload_name: input.fileName ?? null,
      media_length: bytes,
      uploaded_ts: this.clock.now(),
    });
    if (!completed) {
      await unlink(target).catch(() => undefined);
      throw unknownMedia(); // expired while the body was coming
    }
  }

  /** A local medium's content; waits up to `timeoutMs` for one created and not uploaded yet. */
  async download(serverName: string, mediaId: string, timeoutMs = DEFAULT_WAIT_MS): Promise<MediaContent> {
    const row = await this.uploadedRow(serverName, mediaId, timeoutMs);
    const file = await this.files.open(this.files.contentPath(mediaId));
    if (!file) throw unknownMedia();
    return { stream: file.stream, size: file.size, mediaType: row.media_type ?? 'application/octet-stream', uploadName: row.upload_name };
  }

  /**
   * A thumbnail of a local image, of the configured size closest to the request: made on the first
   * request for that size, then served from disk.
   */
  async thumbnail(serverName: string, mediaId: string, width: number, height: number, method: ThumbnailMethod, timeoutMs = DEFAULT_WAIT_MS): Promise<MediaContent> {
    const row = await this.uploadedRow(serverName, mediaId, timeoutMs);
    const mediaType = (row.media_type ?? '').split(';')[0]!;
    if (!THUMBNAILABLE_TYPES.has(mediaType)) throw new MatrixError(400, 'M_UNKNOWN', 'Cannot generate thumbnails for the requested content');
    const size = chooseThumbnailSize(this.config.thumbnail_sizes as ThumbnailSize[], width, height, method);
    const outputType = thumbnailTypeFor(mediaType);
    const path = this.files.thumbnailPath(mediaId, size.width, size.height, outputType, size.method);
    let file = await this.files.open(path);
    if (!file) {
      await this.makeOnce(path, () => this.generate(row, size, outputType, path));
      file = await this.files.open(path);
      if (!file) throw unknownMedia(); // deleted meanwhile
    }
    return { stream: file.stream, size: file.size, mediaType: outputType, uploadName: null };
  }

  /** Admin: makes the medium unavailable to everyone (its files are kept). False when there is no such local medium. */
  async quarantine(serverName: string, mediaId: string, adminId: string): Promise<boolean> {
    if (serverName !== this.serverName || !isMediaId(mediaId)) return false;
    return this.store.media.quarantine(mediaId, adminId);
  }

  async unquarantine(serverName: string, mediaId: string): Promise<boolean> {
    if (serverName !== this.serverName || !isMediaId(mediaId)) return false;
    return this.store.media.quarantine(mediaId, null);
  }

  /** Admin: deletes the medium, its thumbnails and their files. False when there is no such local medium. */
  async delete(serverName: string, mediaId: string): Promise<boolean> {
    if (serverName !== this.serverName || !isMediaId(mediaId)) return false;
    return this.deleteLocal(mediaId);
  }

  /** Deletes a local medium's rows, then its files; false when there was none. */
  private async deleteLocal(mediaId: string): Promise<boolean> {
    const deleted = await this.store.media.delete(mediaId);
    if (deleted) await this.files.remove(mediaId);
    return deleted;
  }

  /** Deletes created IDs that expired without content (a few hundred at a time). */
  async pruneUnused(): Promise<void> {
    for (const { media_id } of await this.store.media.expiredUnused(this.clock.now(), 500)) await this.store.media.delete(media_id);
  }

  /**
   * Deletes media fetched for URL previews once two days old, files and all, as Synapse does (a
   * client may still show an older preview for a while; the preview itself is cached far shorter).
   * A few hundred at a time.
   */
  async pruneUrlCache(): Promise<number> {
    const stale = await this.store.media.urlCacheBefore(this.clock.now() - URL_CACHE_MEDIA_MS, 500);
    for (const { media_id } of stale) await this.deleteLocal(media_id);
    return stale.length;
  }

  private async admitUpload(userId: string, contentLength: number | undefined): Promise<void> {
    if (contentLength !== undefined && contentLength > this.config.max_upload_size) throw tooLarge(this.config.max_upload_size);
    await this.limiter.take(`media_create:${userId}`, this.config.rc_media_create);
    await this.checkQuota(userId, contentLength ?? 0);
  }

  /** Refuses an upload of `bytes` that would take the user past one of media_upload_limits. */
  private async checkQuota(userId: string, bytes: number): Promise<void> {
    const now = this.clock.now();
    for (const { time_period, max_size } of this.config.media_upload_limits) {
      const used = await this.store.media.uploadedBytesSince(userId, now - time_period);
      // The spec's answer for a quota: 403.
      if (used + bytes > max_size) throw forbidden('You have reached your upload quota for now');
    }
  }

  /** Streams the body to a temporary file, within max_upload_size and the user's quota. */
  private async receive(userId: string, input: UploadInput): Promise<{ temp: string; bytes: number }> {
    let received: { temp: string; bytes: number };
    try {
      received = await this.files.write(input.body, this.config.max_upload_size);
    } catch (err) {
      if (err instanceof TooLargeError) throw tooLarge(this.config.max_upload_size);
      if ((err as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE' || (err as NodeJS.ErrnoException).code === 'ECONNRESET') {
        throw new MatrixError(400, 'M_UNKNOWN', 'The upload was interrupted');
      }
      throw err;
    }
    if (input.contentLength === undefined && this.config.media_upload_limits.length > 0) {
      try {
        await this.checkQuota(userId, received.bytes);
      } catch (err) {
        await this.files.discard(received.temp);
        throw err;
      }
    }
    return received;
  }

  private async localRow(serverName: string, mediaId: string): Promise<LocalMediaRow | undefined> {
    if (serverName !== this.serverName || !isMediaId(mediaId)) return undefined;
    const row = await this.store.media.get(mediaId);
    return row && row.quarantined_by === null ? row : undefined;
  }

  private async uploadedRow(serverName: string, mediaId: string, timeoutMs: number): Promise<LocalMediaRow> {
    const deadline = Date.now() + Math.min(Math.max(0, timeoutMs), MAX_WAIT_MS);
    for (;;) {
      const row = await this.localRow(serverName, mediaId);
      if (!row) throw unknownMedia();
      if (row.uploaded_ts !== null) return row;
      if (row.unused_expires_ts === null || row.unused_expires_ts <= this.clock.now()) throw unknownMedia();
      if (Date.now() >= deadline) throw notYetUploaded();
      await new Promise((resolve) => setTimeout(resolve, Math.min(POLL_MS, Math.max(1, deadline - Date.now()))));
    }
  }

  private async makeOnce(key: string, make: () => Promise<void>): Promise<void> {
    let pending = this.making.get(key);
    if (!pending) {
      pending = make().finally(() => this.making.delete(key));
      this.making.set(key, pending);
    }
    await pending;
  }

  private async generate(row: LocalMediaRow, size: ThumbnailSize, outputType: 'image/jpeg' | 'image/png', path: string): Promise<void> {
    const temp = await this.files.tempPath();
    try {
      await makeThumbnail(this.files.contentPath(row.media_id), temp, size, outputType, this.config.max_image_pixels);
      await this.files.commit(temp, path);
    } catch (err) {
      await this.files.discard(temp);
      if (err instanceof TooManyPixelsError) throw new MatrixError(413, 'M_TOO_LARGE', 'Content is too large to thumbnail');
      if (err instanceof UnreadableImageError) throw new MatrixError(400, 'M_UNKNOWN', 'Cannot generate thumbnails for the requested content');
      throw err;
    }
    const file = await this.files.open(path);
    if (file) {
      file.stream.destroy();
      await this.store.media.addThumbnail({ media_id: row.media_id, width: size.width, height: size.height, method: size.method, media_type: outputType, media_length: file.size });
    }
  }
}

/** A media ID this server could have made (and safe as a file name). */
export function isMediaId(mediaId: string): boolean {
  return MEDIA_ID.test(mediaId) && mediaId.length >= 5;
}

/** The stored type: the header's media type, lower-cased, parameters kept (e.g. a text charset). */
function mediaTypeOf(contentType: string | undefined): string {
  const value = (contentType ?? '').trim();
  if (value === '' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*;[ -~\t]*)?$/.test(value)) return 'application/octet-stream';
  const [type, ...params] = value.split(';');
  return [type!.trim().toLowerCase(), ...params.map((p) => p.trim())].join('; ');
}

function newMediaId(): string {
  let id = '';
  for (let i = 0; i < 24; i++) id += ID_ALPHABET[randomInt(ID_ALPHABET.length)];
  return id;
}
