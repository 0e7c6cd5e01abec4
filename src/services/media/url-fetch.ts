import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { MatrixError } from '../../errors.js';
import { withTimeout } from '../../with-timeout.js';
import { TooLargeError, type FileStore } from './file-store.js';
import { isAddressBlocked, type IpRangeSet } from './ip-ranges.js';

/**
 * Fetching a URL for a preview without letting it reach what the server must keep to itself
 * (server-side request forgery): only http and https; the host name resolved here and every address
 * it resolves to checked against the ranges, the connection then made to those checked addresses
 * only (the socket's lookup answers them, so nothing resolves the name a second time); each redirect
 * judged again the same way, a bounded number of times; the body streamed to a file and cut off
 * past the size limit; one deadline for the whole fetch; no cookies, no credentials, no compression.
 * Failures are Matrix errors with Synapse's codes.
 */

export interface FetchPolicy {
  blacklist: IpRangeSet;
  whitelist: IpRangeSet;
  /** url_preview_url_blacklist: refused when every part of one entry matches. */
  urlBlacklist: readonly Record<string, string | undefined>[];
  maxBytes: number;
  timeoutMs: number;
  maxRedirects: number;
  acceptLanguage: string;
  userAgent: string;
}

export interface FetchedFile {
  temp: string;
  bytes: number;
  /** The Content-Type header (application/octet-stream when absent). */
  mediaType: string;
  /** Where the content came from, after redirects (relative links are resolved against it). */
  finalUrl: string;
  fileName: string | null;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export const urlBlocked = () => new MatrixError(403, 'M_UNKNOWN', 'URL blocked by url pattern blacklist entry');
const ipBlocked = () => new MatrixError(403, 'M_UNKNOWN', 'IP address blocked by IP blacklist entry');
const dnsFailure = () => new MatrixError(502, 'M_UNKNOWN', 'DNS resolution failure during URL preview generation');
const tooLarge = (limit: number) => new MatrixError(502, 'M_TOO_LARGE', `Requested file is too large > ${limit} bytes`);
const timedOut = () => new MatrixError(504, 'M_UNKNOWN', 'Timed out fetching the URL');
const failed = (why: string) => new MatrixError(502, 'M_UNKNOWN', `Failed to download content: ${why}`);

/** The URL as a URL object when its scheme is http or https (and it has a host), else undefined. */
export function httpUrl(text: string, base?: string): URL | undefined {
  let url: URL;
  try {
    url = new URL(text, base);
  } catch {
    return undefined;
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') return undefined;
  return url;
}

/** Whether the URL matches an entry of url_preview_url_blacklist (Synapse's matching: glob, or a regular expression when the pattern starts with ^). */
export function isUrlBlacklisted(url: URL, entries: readonly Record<string, string | undefined>[]): boolean {
  const parts = urlParts(url);
  return entries.some((entry) =>
    Object.entries(entry).every(([part, pattern]) => {
      if (pattern === undefined) return true;
      const value = parts[part];
      if (value === undefined) return false;
      return pattern.startsWith('^') ? safeRegex(pattern)?.test(value) === true : globRegex(pattern).test(value);
    }),
  );
}

/** The parts Synapse's urlsplit gives, by its names; absent ones are undefined (an entry naming them never matches). */
function urlParts(url: URL): Record<string, string | undefined> {
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const userinfo = url.username || url.password ? `${url.username}${url.password ? `:${url.password}` : ''}@` : '';
  return {
    scheme: url.protocol.slice(0, -1),
    netloc: userinfo + url.host,
    hostname: hostname.toLowerCase(),
    port: url.port === '' ? undefined : url.port,
    path: url.pathname,
    params: '',
    query: url.search.replace(/^\?/, ''),
    fragment: url.hash.replace(/^#/, ''),
    username: url.username === '' ? undefined : decodeURIComponent(url.username),
    password: url.password === '' ? undefined : decodeURIComponent(url.password),
  };
}

function safeRegex(pattern: string): RegExp | undefined {
  try {
    return new RegExp(pattern);
  } catch {
    return undefined;
  }
}

/** fnmatch's glob: * any run, ? one character, [...] a class ([!...] negated), the whole value. */
function globRegex(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) {
        out += '\\[';
        continue;
      }
      let body = pattern.slice(i + 1, end);
      if (body.startsWith('!')) body = `^${body.slice(1)}`;
      out += `[${body.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else out += c.replace(/[.+^${}()|\\/\]]/g, '\\$&');
  }
  return new RegExp(`^${out}$`, 's');
}

/** Resolves the host and checks every address; an IP literal is checked as it is. */
async function checkedAddresses(host: string, policy: FetchPolicy): Promise<LookupAddress[]> {
  const bare = host.startsWith('[') ? host.slice(1, -1) : host;
  const literal = isIP(bare);
  if (literal !== 0) {
    if (isAddressBlocked(bare, policy.blacklist, policy.whitelist)) throw ipBlocked();
    return [{ address: bare, family: literal }];
  }
  let addresses: LookupAddress[];
  try {
    addresses = await new Promise<LookupAddress[]>((resolve, reject) =>
      dnsLookup(bare, { all: true, verbatim: true }, (err, found) => (err ? reject(err) : resolve(found))),
    );
  } catch {
    throw dnsFailure();
  }
  // As Synapse: a name with any blocked address is refused as a whole (its other addresses may be the attacker's choice too).
  if (addresses.length === 0 || addresses.some((a) => isAddressBlocked(a.address, policy.blacklist, policy.whitelist))) throw dnsFailure();
  return addresses;
}

/** A socket lookup that answers only the addresses checked before, whatever it is asked. */
function pinnedLookup(addresses: LookupAddress[]): LookupFunction {
  return (_hostname, options, callback) => {
    const family = typeof options.family === 'number' && options.family !== 0 ? options.family : undefined;
    const usable = family ? addresses.filter((a) => a.family === family) : addresses;
    if (usable.length === 0) {
      callback(Object.assign(new Error('no checked address of that family'), { code: 'ENOTFOUND' }), '', 0);
      return;
    }
    if (options.all) (callback as unknown as (err: null, addresses: LookupAddress[]) => void)(null, usable);
    else callback(null, usable[0]!.address, usable[0]!.family);
  };
}

/**
 * Fetches `url` (already an http(s) URL) into a temporary file of `files`, following redirects.
 * `isAllowedType` is asked about the Content-Type before the body is read.
 */
export async function fetchToFile(start: URL, files: FileStore, policy: FetchPolicy, isAllowedType: (mediaType: string) => boolean): Promise<FetchedFile> {
  const deadline = Date.now() + policy.timeoutMs;
  let url = start;
  for (let hop = 0; ; hop++) {
    if (isUrlBlacklisted(url, policy.urlBlacklist)) throw urlBlocked();
    // The resolver may hang (getaddrinfo has its own, long, timeouts): the deadline bounds it too.
    const addresses = await withTimeout(checkedAddresses(url.hostname, policy), Math.max(0, deadline - Date.now())).catch((err: unknown) => {
      throw err instanceof MatrixError ? err : timedOut();
    });
    if (Date.now() >= deadline) throw timedOut();
    const { response, abort } = await send(url, addresses, policy, deadline);
    const status = response.statusCode ?? 0;
    const location = response.headers.location;
    if (REDIRECTS.has(status) && location !== undefined) {
      abort();
      if (hop >= policy.maxRedirects) throw failed('too many redirects');
      const next = httpUrl(location, url.href);
      if (!next) throw failed('redirected to an unsupported URL');
      url = next;
      continue;
    }
    try {
      if (status < 200 || status > 299) throw new MatrixError(502, 'M_UNKNOWN', `Got error ${status}`);
      const length = response.headers['content-length'];
      if (length !== undefined && /^\d+$/.test(length) && Number(length) > policy.maxBytes) throw tooLarge(policy.maxBytes);
      const mediaType = response.headers['content-type']?.trim() || 'application/octet-stream';
      if (!isAllowedType(mediaType)) throw new MatrixError(502, 'M_UNKNOWN', `Requested file's content type not allowed for this operation: ${mediaType}`);
      let written: { temp: string; bytes: number };
      try {
        written = await files.write(response, policy.maxBytes);
      } catch (err) {
        if (err instanceof TooLargeError) throw tooLarge(policy.maxBytes);
        throw err;
      }
      abort(); // the body is complete; nothing more is wanted from this connection
      return { ...written, mediaType, finalUrl: url.href, fileName: fileNameOf(response) };
    } catch (err) {
      abort();
      throw asFetchError(err);
    }
  }
}

/** Sends the GET and waits for the response head; `abort` ends the request and its connection. */
function send(url: URL, addresses: LookupAddress[], policy: FetchPolicy, deadline: number): Promise<{ response: IncomingMessage; abort: () => void }> {
  return new Promise((resolve, reject) => {
    const request = (url.protocol === 'https:' ? httpsRequest : httpRequest)({
      protocol: url.protocol,
      // The name stays the request's host (the Host header, and TLS's server name and certificate check); the lookup pins the addresses.
      host: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
      port: url.port === '' ? undefined : Number(url.port),
      path: `${url.pathname}${url.search}`,
      method: 'GET',
      // No pooled connection: each request connects where it was checked to.
      agent: false,
      lookup: pinnedLookup(addresses),
      headers: {
        'accept-language': policy.acceptLanguage,
        'user-agent': policy.userAgent,
        accept: 'text/html,application/xhtml+xml,image/*;q=0.9,*/*;q=0.8',
        'accept-encoding': 'identity',
      },
    });
    let received: IncomingMessage | undefined;
    const timer = setTimeout(() => {
      // The response first, so that whoever reads its body sees why it ended.
      received?.destroy(new DeadlineError());
      request.destroy(new DeadlineError());
    }, Math.max(0, deadline - Date.now()));
    timer.unref();
    const abort = () => {
      clearTimeout(timer);
      received?.destroy();
      request.destroy();
    };
    request.on('socket', (socket) => {
      // Defence in depth: whatever the lookup answered, the peer must be an allowed address.
      socket.once('connect', () => {
        const peer = socket.remoteAddress;
        if (peer === undefined || isAddressBlocked(peer, policy.blacklist, policy.whitelist)) request.destroy(ipBlocked());
      });
    });
    request.once('response', (response) => {
      received = response;
      // Its failures are seen by whoever reads it (or do not matter once it is given up).
      response.on('error', () => undefined);
      // The deadline still runs for the body.
      resolve({ response, abort });
    });
    request.on('error', (err) => {
      clearTimeout(timer);
      reject(asFetchError(err));
    });
    request.end();
  });
}

class DeadlineError extends Error {}

function asFetchError(err: unknown): MatrixError {
  if (err instanceof MatrixError) return err;
  if (err instanceof DeadlineError) return timedOut();
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return dnsFailure();
  return failed(code ?? (err as Error).message ?? 'error');
}

/** The file name of a Content-Disposition header (filename*=UTF-8'' first, then filename=). */
function fileNameOf(response: IncomingMessage): string | null {
  const header = response.headers['content-disposition'];
  if (!header) return null;
  const extended = /filename\*\s*=\s*utf-8''([^;]+)/i.exec(header);
  if (extended) {
    try {
      return decodeURIComponent(extended[1]!.trim()) || null;
    } catch {
      // fall through to the plain parameter
    }
  }
  const plain = /filename\s*=\s*(?:"([^"]*)"|([^;\s]+))/i.exec(header);
  const name = plain?.[1] ?? plain?.[2];
  return name && /^[\x20-\x7e]+$/.test(name) ? name : null;
}
