import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { DEFAULT_URL_PREVIEW_IP_RANGE_BLACKLIST } from '../src/config/sections/media.js';
import { parseConfig } from '../src/config/load.js';
import { decodeHtml, parseOpenGraph } from '../src/services/media/html-preview.js';
import { IpRangeSet, embeddedIpv4, isAddressBlocked } from '../src/services/media/ip-ranges.js';
import { FileStore } from '../src/services/media/file-store.js';
import { URL_CACHE_MEDIA_MS } from '../src/services/media/media.js';
import { fetchToFile, httpUrl, isUrlBlacklisted } from '../src/services/media/url-fetch.js';
import { MatrixError } from '../src/errors.js';
import { validateResponse } from './helpers/openapi.js';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

/**
 * URL previews over HTTP, on both engines (the image of a preview is stored as a local medium): a
 * site started here on 127.0.0.1 (whitelisted, as loopback is blacklisted by default) serves pages
 * and an image; a second one on 127.0.0.2 (not whitelisted) must never be asked anything. Covers the
 * OpenGraph answer and its stored image, the cache, the fallbacks and charsets, the address checks
 * (literal addresses, names, IPv4-mapped IPv6, redirects), the size cut, bad parameters,
 * authentication, and the endpoint when previews are off.
 */

type Json = Record<string, unknown>;
const LEGACY = '/_matrix/media/v3';
const AUTHED = '/_matrix/client/v1/media';

interface Site {
  server: Server;
  port: number;
  hits: Map<string, number>;
  /** The Host header of the last request of each path. */
  hosts: Map<string, string | undefined>;
  /** Whether the endless page was sent to its end (it must not be). */
  bigFinished: boolean;
  bigClosedAfter: number;
}

async function get(server: TestServer, path: string, token?: string, expect: { serverError?: boolean } = {}): Promise<{ status: number; json: Json; bytes: Buffer }> {
  const res = await fetch(server.url + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const bytes = Buffer.from(await res.arrayBuffer());
  if (!(res.headers.get('content-type') ?? '').startsWith('application/json')) return { status: res.status, json: {}, bytes };
  const json = JSON.parse(bytes.toString('utf8')) as Json;
  await validateResponse('GET', path, res.status, json, expect);
  return { status: res.status, json, bytes };
}

const previewPath = (url: string, prefix = AUTHED, ts?: string) => `${prefix}/preview_url?url=${encodeURIComponent(url)}${ts === undefined ? '' : `&ts=${ts}`}`;

async function startSite(host: string, png: Buffer, blockedPort: () => number): Promise<Site> {
  const site: Site = { server: undefined as unknown as Server, port: 0, hits: new Map(), hosts: new Map(), bigFinished: false, bigClosedAfter: 0 };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    site.hits.set(path, (site.hits.get(path) ?? 0) + 1);
    site.hosts.set(path, req.headers.host);
    if (req.headers.cookie || req.headers.authorization) {
      res.writeHead(400).end('credentials sent');
      return;
    }
    const html = (body: string | Buffer, type = 'text/html; charset=utf-8') => res.writeHead(200, { 'content-type': type }).end(body);
    if (path.startsWith('/page')) {
      html(`<!doctype html><html><head>
        <meta property="og:title" content="A &amp; B: the page">
        <meta property="og:description" content="What   the page
          is about.">
        <meta property="og:image" content="/image.png">
        <meta property="og:type" content="article">
        <title>Not this title</title></head><body><p>Body text</p></body></html>`);
    } else if (path === '/image.png' || path === '/direct.png') {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(png.length), 'content-disposition': 'inline; filename="pic.png"' }).end(png);
    } else if (path === '/plain-latin1') {
      // No OpenGraph; the charset only in a <meta>, the bytes Latin-1.
      html(Buffer.from('<html><head><meta charset="iso-8859-1"><title>Caf\xe9 menu</title><meta name="description" content="Cr\xe8me br\xfbl\xe9e daily"></head><body><img src="/image.png"></body></html>', 'latin1'), 'text/html');
    } else if (path === '/text-only') {
      html(`<html><head><title>T</title></head><body><nav>Skip this menu</nav><h1>Heading</h1><p>First paragraph of the article.</p><script>var x = "no";</script><p>Second paragraph.</p></body></html>`);
    } else if (path === '/blocked-image') {
      html(`<html><head><meta property="og:title" content="Has a blocked image"><meta property="og:image" content="http://127.0.0.2:${blockedPort()}/image.png"></head></html>`);
    } else if (path === '/to-page') {
      res.writeHead(302, { location: '/page?from=redirect' }).end();
    } else if (path === '/to-blocked') {
      res.writeHead(302, { location: `http://127.0.0.2:${blockedPort()}/page` }).end();
    } else if (path === '/to-ftp') {
      res.writeHead(301, { location: 'ftp://127.0.0.1/x' }).end();
    } else if (path === '/loop') {
      res.writeHead(302, { location: '/loop' }).end();
    } else if (path === '/missing') {
      res.writeHead(404, { 'content-type': 'text/html' }).end('<title>gone</title>');
    } else if (path === '/zip') {
      res.writeHead(200, { 'content-type': 'application/zip' }).end('PK');
    } else if (path === '/declared-big') {
      res.writeHead(200, { 'content-type': 'text/html', 'content-length': String(10 * 1024 * 1024) });
      res.write('<html>');
      // never completes: the declared length alone must make the server give up
    } else if (path === '/endless') {
      res.writeHead(200, { 'content-type': 'text/html' });
      const chunk = Buffer.alloc(64 * 1024, 'a');
      let sent = 0;
      res.on('close', () => {
        site.bigClosedAfter = sent;
      });
      while (sent < 20 * 1024 * 1024 && !res.destroyed) {
        sent += chunk.length;
        if (!res.write(chunk)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              res.off('drain', done).off('close', done);
              resolve();
            };
            res.on('drain', done).on('close', done);
          });
        }
      }
      if (!res.destroyed) {
        site.bigFinished = true;
        res.end();
      }
    } else {
      res.writeHead(404).end();
    }
  };
  site.server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => site.server.listen(0, host, resolve));
  site.port = (site.server.address() as AddressInfo).port;
  return site;
}

describe('URL preview parts', () => {
  it('judges addresses by the ranges: IPv4, IPv6, IPv4-mapped and embedded IPv4, whitelist over blacklist, 0.0.0.0 and :: always', () => {
    const blacklist = new IpRangeSet(DEFAULT_URL_PREVIEW_IP_RANGE_BLACKLIST);
    const none = new IpRangeSet([]);
    const blockedByDefault = ['127.0.0.1', '127.255.0.9', '10.0.0.1', '172.16.5.5', '192.168.1.1', '100.64.0.1', '169.254.169.254', '224.0.0.1', '0.1.2.3', '255.255.255.255',
      '::1', 'fe80::1', 'fc00::1', 'fd12:3456::1', 'ff02::1', '2001:db8::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1', '::127.0.0.1', '64:ff9b::7f00:1', '64:ff9b::10.1.1.1', '2002:7f00:1::', '2002:c0a8:101::1', '0.0.0.0', '::', 'not-an-address', ''];
    for (const address of blockedByDefault) assert.equal(isAddressBlocked(address, blacklist, none), true, address);
    for (const address of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::1', '[2606:4700:4700::1111]']) {
      assert.equal(isAddressBlocked(address, blacklist, none), false, address);
    }
    const whitelist = new IpRangeSet(['127.0.0.1', '10.1.0.0/16', '0.0.0.0']);
    assert.equal(isAddressBlocked('127.0.0.1', blacklist, whitelist), false);
    assert.equal(isAddressBlocked('::ffff:127.0.0.1', blacklist, whitelist), false);
    assert.equal(isAddressBlocked('127.0.0.2', blacklist, whitelist), true);
    assert.equal(isAddressBlocked('10.1.200.3', blacklist, whitelist), false);
    assert.equal(isAddressBlocked('10.2.0.1', blacklist, whitelist), true);
    assert.equal(isAddressBlocked('0.0.0.0', blacklist, whitelist), true);
    // An empty blacklist still refuses "any address".
    assert.equal(isAddressBlocked('::', none, none), true);
    assert.equal(isAddressBlocked('127.0.0.1', none, none), false);
    assert.equal(embeddedIpv4('::ffff:1.2.3.4'), undefined);
    assert.equal(embeddedIpv4('64:ff9b::102:304'), '1.2.3.4');
    assert.equal(embeddedIpv4('2002:102:304::'), '1.2.3.4');
    assert.equal(embeddedIpv4('::1'), undefined);
  });

  it('matches url_preview_url_blacklist entries as Synapse: every part of an entry, globs or ^regular expressions', () => {
    const entries = [{ hostname: '*.evil.test' }, { scheme: 'http', netloc: 'plain.test' }, { path: '^/admin' }, { username: '*' }, { port: '8[0-9][0-9][0-9]' }];
    const blocked = (url: string) => isUrlBlacklisted(httpUrl(url)!, entries);
    assert.equal(blocked('https://a.evil.test/'), true);
    assert.equal(blocked('https://evil.test/'), false);
    assert.equal(blocked('http://plain.test/x'), true);
    assert.equal(blocked('https://plain.test/x'), false);
    assert.equal(blocked('https://ok.test/admin/panel'), true);
    assert.equal(blocked('https://ok.test/x/admin'), false);
    assert.equal(blocked('https://someone@ok.test/'), true);
    assert.equal(blocked('https://ok.test:8080/'), true);
    assert.equal(blocked('https://ok.test/'), false);
    assert.equal(httpUrl('ftp://x/'), undefined);
    assert.equal(httpUrl('javascript:alert(1)'), undefined);
    assert.equal(httpUrl('/relative'), undefined);
    assert.equal(httpUrl('img.png', 'http://a.test/dir/page')?.href, 'http://a.test/dir/img.png');
  });

  it('decodes a page by its BOM, header charset, <meta> charset, else UTF-8 or Windows-1252', () => {
    const latin1 = Buffer.from('<title>caf\xe9</title>', 'latin1');
    assert.equal(decodeHtml(latin1, 'text/html'), '<title>café</title>'); // not UTF-8: Windows-1252
    assert.equal(decodeHtml(Buffer.from('<title>café</title>'), 'text/html'), '<title>café</title>');
    assert.equal(decodeHtml(latin1, 'text/html; charset=ISO-8859-1'), '<title>café</title>');
    assert.equal(decodeHtml(Buffer.from('<meta http-equiv="Content-Type" content="text/html; charset=windows-1251"><p>\xe4\xe0</p>', 'latin1'), 'text/html'), '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251"><p>да</p>');
    assert.equal(decodeHtml(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('é')]), 'text/html; charset=latin1'), 'é');
    assert.equal(decodeHtml(Buffer.from('é'), 'text/html; charset=no-such-charset'), 'é');
  });

  it('extracts OpenGraph data with Synapse\'s fallbacks', async () => {
    const og = await parseOpenGraph(`<html><head><meta name="twitter:title" content="Tw title"><meta name="twitter:card" content="summary">
      <meta name="twitter:description" content="Tw desc"><meta property="og:site_name" content="Site"></head>
      <body><img src="small.png" width="5" height="5"><img src="big.png" width="300" height="200"><img src="mid.png" width="100" height="100"></body></html>`);
    assert.deepEqual(og, { 'og:site_name': 'Site', 'og:title': 'Tw title', 'og:description': 'Tw desc', 'og:image': 'big.png' });
    const many = await parseOpenGraph(`<title>Only</title>${Array.from({ length: 60 }, (_, i) => `<meta property="og:k${i}" content="v">`).join('')}`);
    assert.equal(many['og:k0'], undefined);
    assert.equal(many['og:title'], 'Only');
    const long = await parseOpenGraph(`<h2>Head</h2><p>${'word '.repeat(300)}</p><link rel="shortcut icon" href="/favicon.ico">`);
    assert.equal(long['og:title'], 'Head');
    assert.equal(long['og:image'], '/favicon.ico');
    assert.ok((long['og:description'] as string).endsWith('…') && (long['og:description'] as string).length <= 501);
    assert.deepEqual(await parseOpenGraph('<p>x</p>'), { 'og:title': null, 'og:description': 'x' });
  });

  it('gives up at the deadline, whether the site is silent before its answer or in the middle of the body (504)', async () => {
    const silent = createServer((req, res) => {
      if (req.url === '/stall-body') {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.write('<html><title>');
      }
      // else: never answers
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const root = mkdtempSync(join(tmpdir(), 'myelin-fetch-'));
    const policy = {
      blacklist: new IpRangeSet(DEFAULT_URL_PREVIEW_IP_RANGE_BLACKLIST),
      whitelist: new IpRangeSet(['127.0.0.1']),
      urlBlacklist: [],
      maxBytes: 1024,
      timeoutMs: 300,
      maxRedirects: 3,
      acceptLanguage: 'en',
      userAgent: 'test',
    };
    try {
      for (const path of ['/no-answer', '/stall-body']) {
        const started = Date.now();
        await assert.rejects(fetchToFile(httpUrl(`http://127.0.0.1:${(silent.address() as AddressInfo).port}${path}`)!, new FileStore(root), policy, () => true), (err: unknown) => {
          assert.ok(err instanceof MatrixError);
          assert.equal(err.status, 504, path);
          return true;
        });
        assert.ok(Date.now() - started < 3000);
      }
    } finally {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('reads the preview settings with Synapse\'s names and defaults, and refuses bad ranges and patterns', () => {
    const base = { server_name: 'example.org' };
    const { config } = parseConfig(base);
    assert.equal(config.url_preview_enabled, false);
    assert.equal(config.max_spider_size, 10 * 1024 * 1024);
    assert.deepEqual(config.url_preview_ip_range_blacklist, DEFAULT_URL_PREVIEW_IP_RANGE_BLACKLIST);
    assert.deepEqual(config.url_preview_ip_range_whitelist, []);
    assert.deepEqual(config.url_preview_accept_language, ['en']);
    assert.equal(parseConfig({ ...base, max_spider_size: '1M' }).config.max_spider_size, 1024 * 1024);
    assert.throws(() => parseConfig({ ...base, url_preview_ip_range_blacklist: ['10.0.0.0/33'] }), /url_preview_ip_range_blacklist/);
    assert.throws(() => parseConfig({ ...base, url_preview_ip_range_whitelist: ['localhost'] }), /url_preview_ip_range_whitelist/);
    assert.throws(() => parseConfig({ ...base, url_preview_url_blacklist: [{ netloc: '^(' }] }), /url_preview_url_blacklist/);
    assert.throws(() => parseConfig({ ...base, url_preview_url_blacklist: [{ host: 'x' }] }), /url_preview_url_blacklist/);
  });
});

const hitsOf = (site: Site) => [...site.hits.values()].reduce((a, b) => a + b, 0);

for (const engine of ENGINES) {
  describe(`URL previews (${engine})`, () => {
    let server: TestServer;
    let store: string;
    let site: Site;
    let blocked: Site;
    let png: Buffer;
    let alice: { user_id: string; access_token: string };
    const base = () => `http://127.0.0.1:${site.port}`;

    before(async () => {
      png = await sharp({ create: { width: 20, height: 10, channels: 3, background: { r: 200, g: 30, b: 60 } } })
        .png()
        .toBuffer();
      blocked = await startSite('127.0.0.2', png, () => 0);
      site = await startSite('127.0.0.1', png, () => blocked.port);
      store = mkdtempSync(join(tmpdir(), 'myelin-preview-'));
      server = await startTestServer(engine, {
        media_store_path: store,
        url_preview_enabled: true,
        // ::1 too, in case localhost also resolves to it here.
        url_preview_ip_range_whitelist: ['127.0.0.1', '::1'],
        max_spider_size: '256K',
      });
      alice = await server.api.register('alice');
    });
    after(async () => {
      await server.close();
      rmSync(store, { recursive: true, force: true });
      site.server.closeAllConnections();
      blocked.server.closeAllConnections();
      await new Promise((resolve) => site.server.close(resolve));
      await new Promise((resolve) => blocked.server.close(resolve));
    });

    it('answers the OpenGraph data, with the image stored as a medium that downloads to the same bytes', async () => {
      const res = await get(server, previewPath(`${base()}/page`, AUTHED, '1510610716656'), alice.access_token);
      assert.equal(res.status, 200, JSON.stringify(res.json));
      assert.equal(res.json['og:title'], 'A & B: the page');
      assert.equal(res.json['og:description'], 'What the page is about.');
      assert.equal(res.json['og:type'], 'article');
      assert.match(res.json['og:image'] as string, /^mxc:\/\/test\.local\/[A-Za-z]{24}$/);
      assert.equal(res.json['og:image:type'], 'image/png');
      assert.equal(res.json['og:image:width'], 20);
      assert.equal(res.json['og:image:height'], 10);
      assert.equal(res.json['matrix:image:size'], png.length);
      const mediaId = (res.json['og:image'] as string).split('/').pop()!;
      const download = await get(server, `${AUTHED}/download/test.local/${mediaId}`, alice.access_token);
      assert.equal(download.status, 200);
      assert.deepEqual(download.bytes, png);
      assert.equal(site.hits.get('/page'), 1);
      assert.equal(site.hits.get('/image.png'), 1);
    });

    it('serves a repeated request from its cache, on every path, without asking the site again', async () => {
      const url = `${base()}/page?cached=1`;
      const first = await get(server, previewPath(url), alice.access_token);
      assert.equal(first.status, 200);
      const second = await get(server, previewPath(url, LEGACY, '0'), alice.access_token);
      const third = await get(server, previewPath(url, '/_matrix/media/r0'), alice.access_token);
      assert.deepEqual(second.json, first.json);
      assert.deepEqual(third.json, first.json);
      assert.equal(site.hits.get('/page?cached=1'), 1);
    });

    it('previews an image URL as that image', async () => {
      const res = await get(server, previewPath(`${base()}/direct.png`), alice.access_token);
      assert.equal(res.status, 200, JSON.stringify(res.json));
      assert.equal(res.json['og:description'], 'pic.png');
      assert.equal(res.json['og:image:type'], 'image/png');
      assert.equal(res.json['og:image:width'], 20);
      assert.equal(res.json['matrix:image:size'], png.length);
      const download = await get(server, `${LEGACY}/download/test.local/${(res.json['og:image'] as string).split('/').pop()}`);
      assert.deepEqual(download.bytes, png);
    });

    it('deletes media fetched for previews once two days old, files too, and keeps uploads and younger previews', async () => {
      const mediaOf = (json: Json) => (json['og:image'] as string).split('/').pop()!;
      const old = await get(server, previewPath(`${base()}/page?aged=1`), alice.access_token);
      const young = await get(server, previewPath(`${base()}/page?aged=2`), alice.access_token);
      const upload = await fetch(`${server.url}/_matrix/media/v3/upload`, { method: 'POST', headers: { authorization: `Bearer ${alice.access_token}`, 'content-type': 'image/png' }, body: new Uint8Array(png) });
      const uploaded = ((await upload.json()) as { content_uri: string }).content_uri.split('/').pop()!;
      const { services } = server.hs;
      const ago = (ms: number) => services.clock.now() - ms;
      const age = (mediaId: string, ts: number) => services.store.db.kysely.updateTable('local_media').set({ created_ts: ts }).where('media_id', '=', mediaId).execute();
      await age(mediaOf(old.json), ago(URL_CACHE_MEDIA_MS + 60_000));
      await age(mediaOf(young.json), ago(URL_CACHE_MEDIA_MS - 60_000));
      await age(uploaded, ago(10 * URL_CACHE_MEDIA_MS));
      const oldFile = services.media.files.contentPath(mediaOf(old.json));
      assert.ok(existsSync(oldFile));
      assert.equal(await services.media.pruneUrlCache(), 1);
      assert.equal((await get(server, `${AUTHED}/download/test.local/${mediaOf(old.json)}`, alice.access_token)).status, 404);
      assert.equal(existsSync(oldFile), false);
      assert.deepEqual((await get(server, `${AUTHED}/download/test.local/${mediaOf(young.json)}`, alice.access_token)).bytes, png);
      assert.deepEqual((await get(server, `${AUTHED}/download/test.local/${uploaded}`, alice.access_token)).bytes, png);
    });

    it('falls back to <title>, the meta description and a page image, reading a Latin-1 page by its <meta charset>', async () => {
      const res = await get(server, previewPath(`${base()}/plain-latin1`), alice.access_token);
      assert.equal(res.status, 200, JSON.stringify(res.json));
      assert.equal(res.json['og:title'], 'Café menu');
      assert.equal(res.json['og:description'], 'Crème brûlée daily');
      assert.match(res.json['og:image'] as string, /^mxc:\/\//);
    });

    it('summarises the page text when there is no description, leaving out menus and scripts', async () => {
      const res = await get(server, previewPath(`${base()}/text-only`), alice.access_token);
      assert.equal(res.status, 200);
      assert.equal(res.json['og:title'], 'T');
      assert.equal(res.json['og:description'], 'Heading\n\nFirst paragraph of the article.\n\nSecond paragraph.');
      assert.equal(res.json['og:image'], undefined);
    });

    it('follows a redirect to an allowed address', async () => {
      const res = await get(server, previewPath(`${base()}/to-page`), alice.access_token);
      assert.equal(res.status, 200);
      assert.equal(res.json['og:title'], 'A & B: the page');
      assert.equal(site.hits.get('/page?from=redirect'), 1);
    });

    it('fetches a host name from the address it resolved to, with the name as the Host header', async () => {
      const res = await get(server, previewPath(`http://localhost:${site.port}/page?named=1`), alice.access_token);
      assert.equal(res.status, 200, JSON.stringify(res.json));
      assert.equal(res.json['og:title'], 'A & B: the page');
      assert.equal(site.hosts.get('/page?named=1'), `localhost:${site.port}`);
    });

    it('refuses blacklisted addresses before any connection: literal, IPv4-mapped IPv6, and as a redirect target', async () => {
      for (const url of [`http://127.0.0.2:${blocked.port}/page`, `http://[::ffff:127.0.0.2]:${blocked.port}/page`, `http://[::ffff:7f00:2]:${blocked.port}/x`]) {
        const res = await get(server, previewPath(url), alice.access_token);
        assert.equal(res.status, 403, url);
        assert.equal(res.json.errcode, 'M_UNKNOWN');
        assert.equal(res.json.error, 'IP address blocked by IP blacklist entry');
      }
      const redirected = await get(server, previewPath(`${base()}/to-blocked`), alice.access_token);
      assert.equal(redirected.status, 403);
      assert.equal(redirected.json.error, 'IP address blocked by IP blacklist entry');
      assert.equal(site.hits.get('/to-blocked'), 1);
      // A page whose image is at a blocked address is previewed without the image.
      const withImage = await get(server, previewPath(`${base()}/blocked-image`), alice.access_token);
      assert.equal(withImage.status, 200);
      assert.deepEqual(withImage.json, { 'og:title': 'Has a blocked image', 'og:description': null });
      assert.equal(hitsOf(blocked), 0);
    });

    it('refuses what the site answers badly: an error status, a refused type, a redirect loop or to another scheme', async () => {
      const cases: [string, number, RegExp][] = [
        ['/missing', 502, /^Got error 404$/],
        ['/zip', 502, /content type not allowed/],
        ['/loop', 502, /too many redirects/],
        ['/to-ftp', 502, /unsupported URL/],
      ];
      for (const [path, status, error] of cases) {
        const res = await get(server, previewPath(`${base()}${path}`), alice.access_token, { serverError: true });
        assert.equal(res.status, status, path);
        assert.equal(res.json.errcode, 'M_UNKNOWN');
        assert.match(res.json.error as string, error);
      }
      assert.equal(site.hits.get('/loop'), 11);
    });

    it('cuts off a body past max_spider_size without reading the rest, and one whose declared length is too large', async () => {
      const endless = await get(server, previewPath(`${base()}/endless`), alice.access_token, { serverError: true });
      assert.equal(endless.status, 502);
      assert.equal(endless.json.errcode, 'M_TOO_LARGE');
      // The connection was closed long before the 20 MiB were sent (socket buffers hold a few MiB at most).
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(site.bigFinished, false);
      assert.ok(site.bigClosedAfter > 0 && site.bigClosedAfter < 8 * 1024 * 1024, `closed after ${site.bigClosedAfter} bytes`);
      const declared = await get(server, previewPath(`${base()}/declared-big`), alice.access_token, { serverError: true });
      assert.equal(declared.status, 502);
      assert.equal(declared.json.errcode, 'M_TOO_LARGE');
    });

    it('rejects a missing or non-http URL and a bad ts', async () => {
      const missing = await get(server, `${AUTHED}/preview_url`, alice.access_token);
      assert.equal(missing.status, 400);
      assert.equal(missing.json.errcode, 'M_MISSING_PARAM');
      for (const url of ['ftp://127.0.0.1/x', 'file:///etc/passwd', 'not a url', '', 'data:text/html,<title>x</title>', 'javascript:alert(1)']) {
        const res = await get(server, previewPath(url), alice.access_token);
        assert.equal(res.status, 400, url);
        assert.equal(res.json.errcode, 'M_INVALID_PARAM', url);
      }
      for (const ts of ['abc', '-5', '1.5']) {
        const res = await get(server, previewPath(`${base()}/page`, AUTHED, ts), alice.access_token);
        assert.equal(res.status, 400, ts);
        assert.equal(res.json.errcode, 'M_INVALID_PARAM');
      }
    });

    it('requires an access token on every path', async () => {
      for (const prefix of [AUTHED, LEGACY]) {
        const res = await get(server, previewPath(`${base()}/page`, prefix));
        assert.equal(res.status, 401);
        assert.equal(res.json.errcode, 'M_MISSING_TOKEN');
      }
    });

    it('advertises only the upload size in /media/config', async () => {
      const res = await get(server, `${AUTHED}/config`, alice.access_token);
      assert.deepEqual(Object.keys(res.json), ['m.upload.size']);
    });
  });

  describe(`URL previews with the default blacklist (${engine})`, () => {
    let server: TestServer;
    let disabled: TestServer;
    let site: Site;
    let token: string;

    before(async () => {
      const png = await sharp({ create: { width: 2, height: 2, channels: 3, background: { r: 0, g: 0, b: 0 } } })
        .png()
        .toBuffer();
      site = await startSite('127.0.0.1', png, () => 0);
      server = await startTestServer(engine, {
        media_store_path: mkdtempSync(join(tmpdir(), 'myelin-preview-')),
        url_preview_enabled: true,
        url_preview_url_blacklist: [{ hostname: 'example.com' }, { scheme: 'http', path: '/private/*' }, { netloc: '^sub\\.example\\.org' }],
      });
      token = (await server.api.register('bob')).access_token;
      disabled = await startTestServer(engine);
    });
    after(async () => {
      rmSync(server.config.media_store_path!, { recursive: true, force: true });
      await server.close();
      await disabled.close();
      site.server.closeAllConnections();
      await new Promise((resolve) => site.server.close(resolve));
    });

    it('refuses loopback by address (403) and by a name that resolves to it (502), without asking the site', async () => {
      const literal = await get(server, previewPath(`http://127.0.0.1:${site.port}/page`), token);
      assert.equal(literal.status, 403);
      assert.equal(literal.json.error, 'IP address blocked by IP blacklist entry');
      const named = await get(server, previewPath(`http://localhost:${site.port}/page`), token, { serverError: true });
      assert.equal(named.status, 502);
      assert.equal(named.json.errcode, 'M_UNKNOWN');
      assert.equal(named.json.error, 'DNS resolution failure during URL preview generation');
      for (const url of ['http://0.0.0.0/', 'http://[::]/', 'http://[::1]/', 'http://10.1.2.3/', 'http://169.254.169.254/latest/meta-data/', 'http://[fe80::1]/', 'http://[::ffff:10.0.0.1]/', 'http://[64:ff9b::7f00:1]/', 'http://2130706433/', 'http://0x7f.1/']) {
        const res = await get(server, previewPath(url), token);
        assert.equal(res.status, 403, url);
      }
      assert.equal(hitsOf(site), 0);
    });

    it('refuses URLs matching url_preview_url_blacklist (globs and ^regular expressions) with 403', async () => {
      for (const url of ['https://example.com/a', 'http://other.test/private/x', 'https://sub.example.org/']) {
        const res = await get(server, previewPath(url), token);
        assert.equal(res.status, 403, url);
        assert.equal(res.json.errcode, 'M_UNKNOWN');
        assert.equal(res.json.error, 'URL blocked by url pattern blacklist entry');
      }
    });

    it('when disabled (the default): the authenticated path is unknown (404) and the legacy one answers 400 M_UNRECOGNIZED', async () => {
      const bob = await disabled.api.register('bob');
      const v1 = await get(disabled, previewPath('https://matrix.org/'), bob.access_token);
      assert.equal(v1.status, 404);
      assert.equal(v1.json.errcode, 'M_UNRECOGNIZED');
      const legacy = await get(disabled, previewPath('https://matrix.org/', LEGACY), bob.access_token);
      assert.equal(legacy.status, 400);
      assert.equal(legacy.json.errcode, 'M_UNRECOGNIZED');
      const anonymous = await get(disabled, previewPath('https://matrix.org/', LEGACY));
      assert.equal(anonymous.status, 401);
    });
  });
}
