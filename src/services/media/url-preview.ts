import { readFile } from 'node:fs/promises';
import type { Clock } from '../../clock.js';
import type { Config } from '../../config/index.js';
import { invalidParam } from '../../errors.js';
import type { RateLimiter } from '../ratelimiter.js';
import { decodeHtml, parseOpenGraph, type OpenGraph } from './html-preview.js';
import { IpRangeSet } from './ip-ranges.js';
import type { MediaService } from './media.js';
import { imageSize } from './thumbnailer.js';
import { fetchToFile, httpUrl, isUrlBlacklisted, urlBlocked, type FetchPolicy, type FetchedFile } from './url-fetch.js';

/** A preview is kept this long (Synapse's in-memory cache: URLs are not fetched more often than hourly). */
const CACHE_MS = 3_600_000;
/** A failed preview is kept this long, so that a failing site is not asked again at every request. */
const FAILURE_CACHE_MS = 60_000;
/** At most this many previews are kept; the oldest go first. */
const CACHE_ENTRIES = 1000;
/** One fetch (the page, or its image) may take this long, connection to last byte. */
const FETCH_TIMEOUT_MS = 15_000;
const MAX_REDIRECTS = 10;
/** Longer keys or values are dropped from a preview (Synapse's bounds). */
const MAX_KEY_LENGTH = 50;
const MAX_VALUE_LENGTH = 1000;
const USER_AGENT = 'Myelin (bot; URL preview)';

const isImage = (mediaType: string) => mediaType.toLowerCase().startsWith('image/');
const isHtml = (mediaType: string) => /^\s*(text\/html|application\/xhtml\+xml)\b/i.test(mediaType);
const isJson = (mediaType: string) => /^\s*application\/json\b/i.test(mediaType);

/**
 * GET /preview_url: the OpenGraph data of a page (or of an image), with the page's image
 * downloaded and stored as a local medium and given as its mxc:// URI. Fetching goes through
 * url-fetch's guarded client; previews are cached in memory per URL, one fetch serving every
 * request that comes meanwhile; a fetch (a cache miss) takes a token of the user's rc_media_create
 * bucket, as it creates media.
 */
export class UrlPreviewService {
  private readonly cache = new Map<string, { expires: number; result: Promise<OpenGraph> }>();
  private readonly policy: FetchPolicy;

  constructor(
    private readonly media: MediaService,
    private readonly config: Config,
    private readonly clock: Clock,
    private readonly limiter: RateLimiter,
  ) {
    this.policy = {
      blacklist: new IpRangeSet(config.url_preview_ip_range_blacklist),
      whitelist: new IpRangeSet(config.url_preview_ip_range_whitelist),
      urlBlacklist: config.url_preview_url_blacklist,
      maxBytes: config.max_spider_size,
      timeoutMs: FETCH_TIMEOUT_MS,
      maxRedirects: MAX_REDIRECTS,
      acceptLanguage: config.url_preview_accept_language.join(', '),
      userAgent: USER_AGENT,
    };
  }

  get enabled(): boolean {
    return this.config.url_preview_enabled;
  }

  /**
   * The preview of `rawUrl`. `ts` (the point in time the client would like) is accepted but a
   * current preview is always given, as the spec allows ("may return a newer version").
   */
  async preview(userId: string, rawUrl: string, _ts: number | undefined): Promise<OpenGraph> {
    const url = httpUrl(rawUrl);
    if (!url) throw invalidParam('url must be an absolute http or https URL');
    if (isUrlBlacklisted(url, this.policy.urlBlacklist)) throw urlBlocked();
    const key = url.href;
    const now = this.clock.now();
    const cached = this.cache.get(key);
    if (cached && cached.expires > now) return cached.result;
    await this.limiter.take(`media_create:${userId}`, this.config.rc_media_create);
    const entry = { expires: now + CACHE_MS, result: this.build(userId, url) };
    this.cache.delete(key);
    this.cache.set(key, entry);
    entry.result.catch(() => {
      entry.expires = Math.min(entry.expires, this.clock.now() + FAILURE_CACHE_MS);
    });
    while (this.cache.size > CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
    return entry.result;
  }

  private async build(userId: string, url: URL): Promise<OpenGraph> {
    const fetched = await fetchToFile(url, this.media.files, this.policy, (type) => isImage(type) || isHtml(type) || isJson(type));
    let og: OpenGraph;
    if (isImage(fetched.mediaType)) {
      og = { 'og:description': fetched.fileName };
      Object.assign(og, await this.storeImage(userId, fetched));
    } else {
      let body: Buffer;
      try {
        body = await readFile(fetched.temp);
      } finally {
        await this.media.files.discard(fetched.temp);
      }
      og = isHtml(fetched.mediaType) && body.length > 0 ? await parseOpenGraph(decodeHtml(body, fetched.mediaType)) : {};
      if ('og:image' in og) await this.precacheImage(userId, og, fetched.finalUrl);
    }
    for (const [key, value] of Object.entries(og)) {
      if (key.length > MAX_KEY_LENGTH || String(value).length > MAX_VALUE_LENGTH) delete og[key];
    }
    return og;
  }

  /** Stores a fetched image as a medium: its mxc:// URI, type, size and (when sharp reads it) dimensions. */
  private async storeImage(userId: string, fetched: FetchedFile): Promise<OpenGraph> {
    const stored = await this.media.storeFetched(userId, fetched.finalUrl, fetched.temp, fetched.bytes, fetched.mediaType, fetched.fileName);
    const og: OpenGraph = { 'og:image': stored.contentUri, 'og:image:type': stored.mediaType, 'matrix:image:size': fetched.bytes };
    const size = await imageSize(stored.path, this.config.max_image_pixels);
    if (size) {
      og['og:image:width'] = size.width;
      og['og:image:height'] = size.height;
    }
    return og;
  }

  /**
   * Replaces the page's og:image (a URL, relative to the page) by a stored copy; when that cannot
   * be had (refused, failing, not an image) the preview goes without an image rather than failing.
   */
  private async precacheImage(userId: string, og: OpenGraph, pageUrl: string): Promise<void> {
    const raw = og['og:image'];
    delete og['og:image'];
    const imageUrl = typeof raw === 'string' && raw.trim() !== '' ? httpUrl(raw.trim(), pageUrl) : undefined;
    if (!imageUrl) return;
    let fetched: FetchedFile;
    try {
      fetched = await fetchToFile(imageUrl, this.media.files, this.policy, isImage);
    } catch {
      return;
    }
    Object.assign(og, await this.storeImage(userId, fetched));
  }
}
