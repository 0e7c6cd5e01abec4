import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import { link, mkdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { Transform, finished, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** What may name a file here: the IDs this server makes, and nothing with a path separator, a dot or U+0000. */
export const MEDIA_ID = /^[A-Za-z0-9_-]{1,255}$/;

/** Thrown by `FileStore.write` when the stream passes the size limit; the partial file is gone by then. */
export class TooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`more than ${limit} bytes`);
  }
}

/** Counts the bytes going through and fails once they pass `limit`. */
class ByteLimit extends Transform {
  bytes = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) callback(new TooLargeError(this.limit));
    else callback(null, chunk);
  }
}

/**
 * The media files under media_store_path, laid out as Synapse lays them out:
 * `local_content/ab/cd/efgh...` for a medium and `local_thumbnails/ab/cd/efgh.../<w>-<h>-<type>-<subtype>-<method>`
 * for its thumbnails. Files are written under `tmp/` and renamed into place once complete, so a
 * reader never sees half a file. Every path is built from a checked media ID and checked to stay
 * under the root.
 */
export class FileStore {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  contentPath(mediaId: string): string {
    return this.inside('local_content', ...shard(mediaId));
  }

  thumbnailPath(mediaId: string, width: number, height: number, mediaType: string, method: string): string {
    const [type, subtype] = mediaType.split('/') as [string, string];
    const name = `${width}-${height}-${type}-${subtype}-${method}`;
    if (!/^[0-9]+-[0-9]+-[a-z]+-[a-z0-9.+-]+-(crop|scale)$/.test(name)) throw new Error(`bad thumbnail name ${name}`);
    return this.inside('local_thumbnails', ...shard(mediaId), name);
  }

  /** A fresh temporary file's path, on the same file system as the media (for rename). */
  async tempPath(): Promise<string> {
    const dir = this.inside('tmp');
    await mkdir(dir, { recursive: true });
    return join(dir, randomBytes(12).toString('hex'));
  }

  /**
   * Streams `source` into a temporary file, at most `limit` bytes (TooLargeError past it, having
   * stopped reading), and returns its path and size; the caller moves it into place with `commit`
   * or drops it with `discard`. Nothing is held in memory beyond the streams' buffers.
   */
  async write(source: Readable, limit: number): Promise<{ temp: string; bytes: number }> {
    const temp = await this.tempPath();
    const counter = new ByteLimit(limit);
    // Piped rather than in the pipeline: a failure here must not destroy the request (and its
    // socket), so that the client still gets the answer (413) before the connection closes.
    finished(source, (err) => {
      if (err) counter.destroy(err);
    });
    source.pipe(counter);
    try {
      await pipeline(counter, createWriteStream(temp, { flags: 'wx', mode: 0o600 }));
    } catch (err) {
      source.unpipe(counter);
      await rm(temp, { force: true });
      throw err;
    }
    return { temp, bytes: counter.bytes };
  }

  /** Moves a finished temporary file to `target` (a content or thumbnail path). */
  async commit(temp: string, target: string): Promise<void> {
    await mkdir(join(target, '..'), { recursive: true });
    await rename(temp, target);
  }

  /** As commit, but only if `target` does not exist (EEXIST otherwise): of two writers racing to one path, one wins. */
  async commitExclusive(temp: string, target: string): Promise<void> {
    await mkdir(join(target, '..'), { recursive: true });
    await link(temp, target);
    await unlink(temp);
  }

  async discard(temp: string): Promise<void> {
    await rm(temp, { force: true });
  }

  /** The file and its size, or undefined when it is not there. */
  async open(path: string): Promise<{ stream: ReadStream; size: number } | undefined> {
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch {
      return undefined;
    }
    return { stream: createReadStream(path), size };
  }

  async exists(path: string): Promise<boolean> {
    try {
      await stat(path);
      return true;
    } catch {
      return false;
    }
  }

  /** Removes a medium's file and all its thumbnails. */
  async remove(mediaId: string): Promise<void> {
    await unlink(this.contentPath(mediaId)).catch(() => undefined);
    await rm(this.inside('local_thumbnails', ...shard(mediaId)), { recursive: true, force: true });
  }

  private inside(...parts: string[]): string {
    const path = resolve(this.root, ...parts);
    if (!path.startsWith(this.root + sep)) throw new Error('media path outside the media store');
    return path;
  }
}

function shard(mediaId: string): [string, string, string] {
  if (!MEDIA_ID.test(mediaId) || mediaId.length < 5) throw new Error('bad media ID');
  return [mediaId.slice(0, 2), mediaId.slice(2, 4), mediaId.slice(4)];
}
