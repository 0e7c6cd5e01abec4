import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { ADMIN_SECRET, registerWithSecret } from './helpers/admin.js';
import { validateResponse } from './helpers/openapi.js';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

/**
 * The content repository over HTTP, on both engines (the media metadata is SQL of its own: the
 * conditional completion of a created ID, pending counts, quarantine): uploads, create then PUT,
 * downloads and thumbnails on the legacy and the authenticated paths, the headers that keep a
 * file from acting as a page, limits, path tricks, and the admin's quarantine and delete.
 */

type Json = Record<string, unknown>;
const LEGACY = '/_matrix/media/v3';
const AUTHED = '/_matrix/client/v1/media';

interface Fetched {
  status: number;
  headers: Headers;
  bytes: Buffer;
  json?: Json;
}

/** A request with a raw body; a JSON answer is checked against the spec, a binary one returned as bytes. */
async function call(server: TestServer, method: string, path: string, options: { token?: string; body?: BodyInit | Uint8Array<ArrayBuffer>; headers?: Record<string, string>; serverError?: boolean } = {}): Promise<Fetched> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const init: RequestInit & { duplex?: 'half' } = { method, headers, body: options.body };
  if (options.body instanceof ReadableStream) init.duplex = 'half';
  const res = await fetch(server.url + path, init);
  const bytes = Buffer.from(await res.arrayBuffer());
  const result: Fetched = { status: res.status, headers: res.headers, bytes };
  const servedMedia = res.status === 200 && /\/(download|thumbnail)\//.test(path);
  if ((res.headers.get('content-type') ?? '').startsWith('application/json') && bytes.length > 0 && !servedMedia) {
    result.json = JSON.parse(bytes.toString('utf8')) as Json;
    await validateResponse(method, path, res.status, result.json, { serverError: options.serverError === true });
  }
  return result;
}

/** A GET with the path exactly as given (no URL normalisation); the JSON answer is checked against the spec. */
async function rawGet(server: TestServer, path: string): Promise<{ status: number; json: Json }> {
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: new URL(server.url).port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk)).on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject).end();
  });
  const json = JSON.parse(body) as Json;
  await validateResponse('GET', path, status, json);
  return { status, json };
}

const mediaIdOf = (mxc: string) => mxc.split('/').pop()!;

for (const engine of ENGINES) {
  describe(`media (${engine})`, () => {
    let server: TestServer;
    let store: string;
    let alice: { user_id: string; access_token: string };
    let bob: { user_id: string; access_token: string };
    let admin: { user_id: string; access_token: string };

    before(async () => {
      store = mkdtempSync(join(tmpdir(), 'myelin-media-'));
      server = await startTestServer(engine, { media_store_path: store, max_upload_size: '2M', registration_shared_secret: ADMIN_SECRET });
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
      admin = await registerWithSecret(server, 'root', 'root-password-1', true);
    });
    after(async () => {
      await server.close();
      rmSync(store, { recursive: true, force: true });
    });

    const upload = async (bytes: Uint8Array<ArrayBuffer>, type: string | undefined, query = '', token = alice.access_token) => {
      const res = await call(server, 'POST', `${LEGACY}/upload${query}`, { token, body: bytes, headers: type ? { 'content-type': type } : {} });
      assert.equal(res.status, 200, JSON.stringify(res.json));
      return res.json!.content_uri as string;
    };
    const tmpFiles = () => (existsSync(join(store, 'tmp')) ? readdirSync(join(store, 'tmp')) : []);

    it('uploads bytes and serves them back on the legacy and the authenticated paths, with the sandboxing headers', async () => {
      const bytes = randomBytes(50_000);
      const mxc = await upload(bytes, 'image/png', '?filename=cat.png');
      assert.match(mxc, /^mxc:\/\/test\.local\/[A-Za-z]{24}$/);
      const id = mediaIdOf(mxc);
      const legacy = await call(server, 'GET', `${LEGACY}/download/test.local/${id}`);
      assert.equal(legacy.status, 200);
      assert.deepEqual(legacy.bytes, bytes);
      assert.equal(legacy.headers.get('content-type'), 'image/png');
      assert.equal(legacy.headers.get('content-length'), '50000');
      assert.equal(legacy.headers.get('content-disposition'), 'inline; filename="cat.png"');
      assert.match(legacy.headers.get('content-security-policy')!, /^sandbox; default-src 'none'; script-src 'none';/);
      assert.equal(legacy.headers.get('x-content-type-options'), 'nosniff');
      const authed = await call(server, 'GET', `${AUTHED}/download/test.local/${id}`, { token: bob.access_token });
      assert.equal(authed.status, 200);
      assert.deepEqual(authed.bytes, bytes);
      const r0 = await call(server, 'GET', `/_matrix/media/r0/download/test.local/${id}/other.png`);
      const head = await fetch(`${server.url}${LEGACY}/download/test.local/${id}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), '50000');
      assert.equal((await head.arrayBuffer()).byteLength, 0);
      // Bodies of any type are content, not parsed: JSON and an empty body too.
      const json = await call(server, 'GET', `${LEGACY}/download/test.local/${mediaIdOf(await upload(Buffer.from('{"a": 1}'), 'application/json'))}`);
      assert.equal(json.bytes.toString(), '{"a": 1}');
      assert.equal(json.headers.get('content-disposition'), 'inline');
      for (const headers of [{}, { 'content-type': 'text/plain' }] as Record<string, string>[]) {
        const empty = await call(server, 'POST', `${LEGACY}/upload`, { token: alice.access_token, headers });
        assert.equal(empty.status, 200);
        const got = await call(server, 'GET', `${LEGACY}/download/test.local/${mediaIdOf(empty.json!.content_uri as string)}`);
        assert.equal(got.bytes.length, 0);
        assert.equal(got.headers.get('content-length'), '0');
      }
      assert.deepEqual(r0.bytes, bytes);
      assert.equal(r0.headers.get('content-disposition'), 'inline; filename="other.png"');
    });

    it('serves active content as an attachment, and encodes file names no quote can break out of', async () => {
      const html = Buffer.from('<script>alert(1)</script>');
      const id = mediaIdOf(await upload(html, 'text/html', `?filename=${encodeURIComponent('pwn "x".html')}`));
      const res = await call(server, 'GET', `${LEGACY}/download/test.local/${id}`);
      assert.equal(res.headers.get('content-disposition'), `attachment; filename*=utf-8''pwn%20%22x%22.html`);
      assert.equal(res.headers.get('content-type'), 'text/html; charset=UTF-8');
      const unicode = await call(server, 'GET', `${LEGACY}/download/test.local/${id}/${encodeURIComponent('Żółw\r\nX-Evil: 1.txt')}`);
      assert.equal(unicode.headers.get('content-disposition'), `attachment; filename*=utf-8''${encodeURIComponent('Żółw\r\nX-Evil: 1.txt')}`);
      assert.equal(unicode.headers.get('x-evil'), null);
      // No type: application/octet-stream, an attachment without a file name.
      const bare = mediaIdOf(await upload(Buffer.from('abc'), undefined));
      const got = await call(server, 'GET', `${AUTHED}/download/test.local/${bare}`, { token: alice.access_token });
      assert.equal(got.headers.get('content-type'), 'application/octet-stream');
      assert.equal(got.headers.get('content-disposition'), 'attachment');
    });

    it('needs an access token on the authenticated paths, on config and on uploads', async () => {
      const id = mediaIdOf(await upload(Buffer.from('x'), 'text/plain'));
      for (const path of [`${AUTHED}/download/test.local/${id}`, `${AUTHED}/download/test.local/${id}/a.txt`, `${AUTHED}/thumbnail/test.local/${id}?width=32&height=32`, `${AUTHED}/config`, `${LEGACY}/config`]) {
        const missing = await call(server, 'GET', path);
        assert.equal(missing.status, 401, path);
        assert.equal(missing.json!.errcode, 'M_MISSING_TOKEN', path);
        const bad = await call(server, 'GET', path, { token: 'nonsense' });
        assert.equal(bad.status, 401, path);
        assert.equal(bad.json!.errcode, 'M_UNKNOWN_TOKEN', path);
      }
      const anonymous = await call(server, 'POST', `${LEGACY}/upload`, { body: Buffer.from('x') });
      assert.equal(anonymous.json!.errcode, 'M_MISSING_TOKEN');
      assert.equal((await call(server, 'POST', '/_matrix/media/v1/create')).json!.errcode, 'M_MISSING_TOKEN');
    });

    it('tells max_upload_size in config', async () => {
      for (const path of [`${LEGACY}/config`, `${AUTHED}/config`, '/_matrix/media/r0/config']) {
        const res = await call(server, 'GET', path, { token: alice.access_token });
        assert.deepEqual(res.json, { 'm.upload.size': 2 * 1024 * 1024 });
      }
    });

    it('refuses an upload over max_upload_size with 413 M_TOO_LARGE, announced or streamed, leaving nothing behind', async () => {
      const announced = await call(server, 'POST', `${LEGACY}/upload`, { token: alice.access_token, body: randomBytes(2 * 1024 * 1024 + 1), headers: { 'content-type': 'application/octet-stream' } });
      assert.equal(announced.status, 413);
      assert.equal(announced.json!.errcode, 'M_TOO_LARGE');
      // Chunked, with no Content-Length: refused once the bytes pass the limit.
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= 5 * 1024 * 1024) return controller.close();
          sent += 64 * 1024;
          controller.enqueue(randomBytes(64 * 1024));
        },
      });
      const streamed = await call(server, 'POST', `${LEGACY}/upload`, { token: alice.access_token, body: stream });
      assert.equal(streamed.status, 413);
      assert.equal(streamed.json!.errcode, 'M_TOO_LARGE');
      assert.deepEqual(tmpFiles(), []);
      // Exactly the limit is accepted.
      await upload(randomBytes(2 * 1024 * 1024), 'application/octet-stream');
    });

    it('drops the partial file of an upload whose client went away', async () => {
      const before = await server.hs.services.store.db.kysely.selectFrom('local_media').select('media_id').execute();
      await new Promise<void>((resolve) => {
        const req = httpRequest(`${server.url}${LEGACY}/upload`, { method: 'POST', headers: { authorization: `Bearer ${alice.access_token}`, 'content-length': '100000' } });
        req.on('error', () => resolve());
        req.write(randomBytes(10_000), () => setTimeout(() => {
          req.destroy();
          resolve();
        }, 200));
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(tmpFiles(), []);
      const afterRows = await server.hs.services.store.db.kysely.selectFrom('local_media').select('media_id').execute();
      assert.equal(afterRows.length, before.length);
    });

    it('creates an ID, waits for its content, takes it once by PUT from its creator only', async () => {
      const created = await call(server, 'POST', '/_matrix/media/v1/create', { token: alice.access_token });
      assert.equal(created.status, 200);
      const mxc = created.json!.content_uri as string;
      assert.ok((created.json!.unused_expires_at as number) > Date.now() + 23 * 3_600_000);
      const id = mediaIdOf(mxc);
      const early = await call(server, 'GET', `${LEGACY}/download/test.local/${id}?timeout_ms=0`, { serverError: true });
      assert.equal(early.status, 504);
      assert.equal(early.json!.errcode, 'M_NOT_YET_UPLOADED');
      const thumbEarly = await call(server, 'GET', `${AUTHED}/thumbnail/test.local/${id}?width=32&height=32&timeout_ms=0`, { token: bob.access_token, serverError: true });
      assert.equal(thumbEarly.json!.errcode, 'M_NOT_YET_UPLOADED');

      const byBob = await call(server, 'PUT', `${LEGACY}/upload/test.local/${id}`, { token: bob.access_token, body: Buffer.from('not yours') });
      assert.equal(byBob.status, 403);
      assert.equal(byBob.json!.errcode, 'M_FORBIDDEN');

      // A download waiting for the content gets it once it arrives.
      const waiting = call(server, 'GET', `${AUTHED}/download/test.local/${id}?timeout_ms=10000`, { token: bob.access_token });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const put = await call(server, 'PUT', `${LEGACY}/upload/test.local/${id}?filename=late.txt`, { token: alice.access_token, body: Buffer.from('late content'), headers: { 'content-type': 'text/plain' } });
      assert.equal(put.status, 200);
      assert.deepEqual(put.json, {});
      const got = await waiting;
      assert.equal(got.status, 200);
      assert.equal(got.bytes.toString(), 'late content');
      assert.equal(got.headers.get('content-disposition'), 'inline; filename="late.txt"');

      const again = await call(server, 'PUT', `${LEGACY}/upload/test.local/${id}`, { token: alice.access_token, body: Buffer.from('overwrite') });
      assert.equal(again.status, 409);
      assert.equal(again.json!.errcode, 'M_CANNOT_OVERWRITE_MEDIA');
      assert.equal((await call(server, 'GET', `${LEGACY}/download/test.local/${id}`)).bytes.toString(), 'late content');

      const unknown = await call(server, 'PUT', `${LEGACY}/upload/test.local/AAAAAAAAAAAAAAAAAAAAAAAA`, { token: alice.access_token, body: Buffer.from('x') });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.json!.errcode, 'M_NOT_FOUND');
    });

    it('lets one of two concurrent PUTs to one created ID win', async () => {
      const id = mediaIdOf((await call(server, 'POST', '/_matrix/media/v1/create', { token: alice.access_token })).json!.content_uri as string);
      const puts = await Promise.all(['first', 'second'].map((text) => call(server, 'PUT', `${LEGACY}/upload/test.local/${id}`, { token: alice.access_token, body: Buffer.from(text) })));
      assert.deepEqual(puts.map((p) => p.status).sort(), [200, 409]);
      const winner = puts[0]!.status === 200 ? 'first' : 'second';
      assert.equal((await call(server, 'GET', `${LEGACY}/download/test.local/${id}`)).bytes.toString(), winner);
    });

    it('answers 404 M_NOT_FOUND to unknown, remote and malformed media IDs, and writes nothing outside the media store', async () => {
      const paths = [
        `${LEGACY}/download/test.local/AAAAAAAAAAAAAAAAAAAAAAAA`,
        `${LEGACY}/download/other.server/AAAAAAAAAAAAAAAAAAAAAAAA`,
        `${LEGACY}/download/test.local/..%2F..%2F..%2Fetc%2Fpasswd`,
        `${LEGACY}/download/test.local/a.b.c.d.e`,
        `${LEGACY}/thumbnail/test.local/..%2Fhomeserver.db?width=32&height=32`,
      ];
      for (const path of paths) {
        const res = await call(server, 'GET', path);
        assert.equal(res.status, 404, path);
        assert.equal(res.json!.errcode, 'M_NOT_FOUND', path);
      }
      // Sent as written: fetch would resolve the dot segments itself.
      for (const raw of [`${LEGACY}/download/test.local/..`, `${LEGACY}/download/test.local/%2E%2E`, `${LEGACY}/download/test.local/.%2E/x`]) {
        const res = await rawGet(server, raw);
        assert.equal(res.status, 404, raw);
        assert.equal(res.json.errcode, 'M_NOT_FOUND', raw);
      }
      const nul = await call(server, 'GET', `${LEGACY}/download/test.local/abc%00def`);
      assert.equal(nul.status, 400);
      const put = await call(server, 'PUT', `${LEGACY}/upload/test.local/..%2F..%2Fescape`, { token: alice.access_token, body: Buffer.from('x') });
      assert.equal(put.status, 404);
      // A file name with path tricks is only ever a name in a header.
      const id = mediaIdOf(await upload(Buffer.from('named'), 'text/plain', `?filename=${encodeURIComponent('../../../escape.txt')}`));
      assert.equal((await call(server, 'GET', `${LEGACY}/download/test.local/${id}`)).headers.get('content-disposition'), 'inline; filename="../../../escape.txt"');
      assert.equal(existsSync(join(store, '..', 'escape.txt')), false);
      assert.deepEqual(readdirSync(store).sort().filter((f) => f !== 'tmp'), ['local_content', 'local_thumbnails'].filter((d) => existsSync(join(store, d))));
    });

    it('makes a thumbnail of a 2 MP JPEG once per size, then serves it from disk', async () => {
      const jpeg = await sharp(randomBytes(1920 * 1080 * 3), { raw: { width: 1920, height: 1080, channels: 3 } }).jpeg({ quality: 70 }).toBuffer();
      assert.ok(jpeg.length > 500_000 && jpeg.length < 2 * 1024 * 1024, `the test JPEG is ${jpeg.length} bytes`);
      const id = mediaIdOf(await upload(jpeg, 'image/jpeg'));

      const crop = await call(server, 'GET', `${AUTHED}/thumbnail/test.local/${id}?width=30&height=30&method=crop`, { token: bob.access_token });
      assert.equal(crop.status, 200);
      assert.equal(crop.headers.get('content-type'), 'image/jpeg');
      assert.equal(crop.headers.get('content-disposition'), 'inline; filename="thumbnail.jpg"');
      assert.equal(crop.headers.get('x-content-type-options'), 'nosniff');
      const cropMeta = await sharp(crop.bytes).metadata();
      assert.deepEqual([cropMeta.format, cropMeta.width, cropMeta.height], ['jpeg', 32, 32]);

      // scale 600x400 picks 640x480 (the smallest at least as large), keeping the aspect ratio.
      const scaled = await call(server, 'GET', `${LEGACY}/thumbnail/test.local/${id}?width=600&height=400&method=scale`);
      const scaledMeta = await sharp(scaled.bytes).metadata();
      assert.deepEqual([scaledMeta.width, scaledMeta.height], [640, 360]);

      const path = server.hs.services.media.files.thumbnailPath(id, 640, 480, 'image/jpeg', 'scale');
      const first = statSync(path);
      const concurrent = await Promise.all(Array.from({ length: 4 }, () => call(server, 'GET', `${LEGACY}/thumbnail/test.local/${id}?width=640&height=480`)));
      for (const res of concurrent) assert.deepEqual(res.bytes, scaled.bytes);
      const later = statSync(path);
      assert.equal(later.ino, first.ino);
      assert.equal(later.mtimeMs, first.mtimeMs);
      const rows = await server.hs.services.store.media.thumbnails(id);
      assert.deepEqual(rows.map((r) => `${r.width}x${r.height} ${r.method} ${r.media_type}`).sort(), ['32x32 crop image/jpeg', '640x480 scale image/jpeg']);
    });

    it('makes PNG thumbnails of PNGs, refuses other content and bad sizes with 400', async () => {
      const png = await sharp({ create: { width: 200, height: 100, channels: 4, background: { r: 0, g: 0, b: 255, alpha: 0.5 } } }).png().toBuffer();
      const id = mediaIdOf(await upload(png, 'image/png'));
      const thumb = await call(server, 'GET', `${LEGACY}/thumbnail/test.local/${id}?width=96&height=96&method=crop`);
      assert.equal(thumb.headers.get('content-type'), 'image/png');
      const meta = await sharp(thumb.bytes).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height, meta.hasAlpha], ['png', 96, 96, true]);
      // Never larger than the image.
      const big = await sharp((await call(server, 'GET', `${LEGACY}/thumbnail/test.local/${id}?width=800&height=600`)).bytes).metadata();
      assert.deepEqual([big.width, big.height], [200, 100]);

      const text = mediaIdOf(await upload(Buffer.from('hello'), 'text/plain'));
      const notImage = await call(server, 'GET', `${LEGACY}/thumbnail/test.local/${text}?width=32&height=32`);
      assert.equal(notImage.status, 400);
      const broken = mediaIdOf(await upload(Buffer.from('not really a png'), 'image/png'));
      const unreadable = await call(server, 'GET', `${LEGACY}/thumbnail/test.local/${broken}?width=32&height=32`);
      assert.equal(unreadable.status, 400);
      assert.equal(unreadable.json!.errcode, 'M_UNKNOWN');
      for (const [query, errcode] of [
        ['width=32', 'M_MISSING_PARAM'],
        ['width=0&height=32', 'M_INVALID_PARAM'],
        ['width=-5&height=32', 'M_INVALID_PARAM'],
        ['width=abc&height=32', 'M_INVALID_PARAM'],
        ['width=32&height=32&method=stretch', 'M_INVALID_PARAM'],
      ]) {
        const res = await call(server, 'GET', `${LEGACY}/thumbnail/test.local/${id}?${query}`);
        assert.equal(res.status, 400, query);
        assert.equal(res.json!.errcode, errcode, query);
      }
    });

    it('lets an admin quarantine a medium (gone for everyone) and delete one (gone, files too)', async () => {
      const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } }).png().toBuffer();
      const id = mediaIdOf(await upload(png, 'image/png'));
      assert.equal((await call(server, 'GET', `${LEGACY}/thumbnail/test.local/${id}?width=32&height=32&method=crop`)).status, 200);
      const refused = await call(server, 'POST', `/_synapse/admin/v1/media/quarantine/test.local/${id}`, { token: alice.access_token });
      assert.equal(refused.status, 403);
      const quarantined = await call(server, 'POST', `/_synapse/admin/v1/media/quarantine/test.local/${id}`, { token: admin.access_token });
      assert.deepEqual(quarantined.json, {});
      for (const [path, token] of [
        [`${LEGACY}/download/test.local/${id}`, undefined],
        [`${AUTHED}/download/test.local/${id}`, alice.access_token],
        [`${AUTHED}/download/test.local/${id}`, admin.access_token],
        [`${AUTHED}/thumbnail/test.local/${id}?width=32&height=32&method=crop`, alice.access_token],
      ] as const) {
        const res = await call(server, 'GET', path, { token });
        assert.equal(res.status, 404, path);
        assert.equal(res.json!.errcode, 'M_NOT_FOUND');
      }
      assert.deepEqual((await call(server, 'POST', `/_synapse/admin/v1/media/unquarantine/test.local/${id}`, { token: admin.access_token })).json, {});
      assert.equal((await call(server, 'GET', `${LEGACY}/download/test.local/${id}`)).status, 200);

      const content = server.hs.services.media.files.contentPath(id);
      assert.ok(existsSync(content));
      const deleted = await call(server, 'DELETE', `/_synapse/admin/v1/media/test.local/${id}`, { token: admin.access_token });
      assert.deepEqual(deleted.json, { deleted_media: [id], total: 1 });
      assert.equal(existsSync(content), false);
      assert.equal(existsSync(server.hs.services.media.files.thumbnailPath(id, 32, 32, 'image/png', 'crop')), false);
      assert.equal((await call(server, 'GET', `${LEGACY}/download/test.local/${id}`)).status, 404);
      const gone = await call(server, 'DELETE', `/_synapse/admin/v1/media/test.local/${id}`, { token: admin.access_token });
      assert.equal(gone.status, 404);
    });
  });

  describe(`media limits (${engine})`, () => {
    let server: TestServer;
    let store: string;
    before(async () => {
      store = mkdtempSync(join(tmpdir(), 'myelin-media-'));
      server = await startTestServer(engine, {
        media_store_path: store,
        rc_media_create: { per_second: 0.001, burst_count: 3 },
        max_pending_media_uploads: 2,
        media_upload_limits: [{ time_period: '1h', max_size: 100 }],
      });
    });
    after(async () => {
      await server.close();
      rmSync(store, { recursive: true, force: true });
    });

    it('limits created IDs waiting for content, upload requests per user and bytes per period', async () => {
      const carol = await server.api.register('carol');
      const dave = await server.api.register('dave');
      const create = (token: string) => call(server, 'POST', '/_matrix/media/v1/create', { token });
      assert.equal((await create(carol.access_token)).status, 200);
      assert.equal((await create(carol.access_token)).status, 200);
      const third = await create(carol.access_token);
      assert.equal(third.status, 429);
      assert.equal(third.json!.errcode, 'M_LIMIT_EXCEEDED');
      // carol's bucket is now empty too (three requests): the next upload is refused.
      const limited = await call(server, 'POST', `${LEGACY}/upload`, { token: carol.access_token, body: Buffer.from('x') });
      assert.equal(limited.status, 429);

      const first = await call(server, 'POST', `${LEGACY}/upload`, { token: dave.access_token, body: Buffer.alloc(80) });
      assert.equal(first.status, 200);
      const overQuota = await call(server, 'POST', `${LEGACY}/upload`, { token: dave.access_token, body: Buffer.alloc(30) });
      assert.equal(overQuota.status, 403);
      assert.equal(overQuota.json!.errcode, 'M_FORBIDDEN');
      assert.equal((await call(server, 'POST', `${LEGACY}/upload`, { token: dave.access_token, body: Buffer.alloc(20) })).status, 200);
    });
  });
}
