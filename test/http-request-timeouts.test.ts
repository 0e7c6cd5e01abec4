import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';

/**
 * How long a client may take to send its request, over raw sockets that trickle bytes: an ordinary
 * request must arrive whole within the request limit, an upload may take longer provided it never
 * goes silent past the idle limit, and headers trickled past the headers limit are cut. The limits
 * are shortened (the defaults are a minute each) so the suite takes seconds.
 */

const TIMEOUTS = { headersMs: 1_000, requestMs: 1_000, uploadIdleMs: 700, headersCheckMs: 100 };
const UPLOAD = '/_matrix/media/v3/upload';

/** A raw connection: what the server sent, and when it closed (ms after opening). */
interface Raw {
  socket: Socket;
  received(): string;
  closed: Promise<number>;
}

async function open(server: TestServer): Promise<Raw> {
  const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const start = Date.now();
  let data = '';
  socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
  // A write after the server cut the connection fails; what the test checks is the close.
  socket.on('error', () => undefined);
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - start)));
  return { socket, received: () => data, closed };
}

/** Writes `chunks` one every `everyMs`, stopping if the connection closes. */
async function trickle(raw: Raw, chunks: Buffer[], everyMs: number): Promise<void> {
  for (const chunk of chunks) {
    if (raw.socket.destroyed) return;
    raw.socket.write(chunk);
    await sleep(everyMs);
  }
}

const head = (method: string, path: string, headers: Record<string, string | number>) =>
  Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`, 'latin1');

const split = (bytes: Buffer, size: number) => Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size));

const statusOf = (response: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1]);
const bodyOf = (response: string) => JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;

for (const engine of HTTP_ENGINES) {
  describe(`request timeouts: whole-request for ordinary requests, idle for uploads (${engine})`, () => {
    let server: TestServer;
    let store: string;
    let token: string;

    before(async () => {
      store = mkdtempSync(join(tmpdir(), 'myelin-timeouts-'));
      server = await startTestServer(engine, { media_store_path: store, max_upload_size: '1M' }, { timeouts: TIMEOUTS });
      token = (await server.api.register('slowpoke')).access_token;
    });
    after(async () => {
      await server.close();
      rmSync(store, { recursive: true, force: true });
    });

    const tmpFiles = () => (existsSync(join(store, 'tmp')) ? readdirSync(join(store, 'tmp')) : []);
    const mediaRows = async () => (await server.hs.services.store.db.kysely.selectFrom('local_media').select('media_id').execute()).length;

    it('cuts an ordinary request whose body takes longer than the request limit, with a 408', async () => {
      const raw = await open(server);
      const body = Buffer.from(JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'slowpoke' }, password: 'x'.repeat(200) }));
      raw.socket.write(head('POST', '/_matrix/client/v3/login', { 'content-type': 'application/json', 'content-length': body.length }));
      // 10 bytes every 100 ms: the body would take over 2 s to arrive.
      void trickle(raw, split(body, 10), 100);
      const closedAt = await raw.closed;
      assert.ok(closedAt >= TIMEOUTS.requestMs - 50, `cut after ${closedAt} ms, before the limit`);
      assert.ok(closedAt < TIMEOUTS.requestMs + 1_000, `cut only after ${closedAt} ms`);
      assert.equal(statusOf(raw.received()), 408, raw.received());
      assert.equal(bodyOf(raw.received()).errcode, 'M_UNKNOWN');
    });

    it('does not count the time a complete request waits for its answer (a long-poll sync)', async () => {
      const started = Date.now();
      const res = await fetch(`${server.url}/_matrix/client/v3/sync?timeout=0`, { headers: { authorization: `Bearer ${token}` } });
      const { next_batch } = (await res.json()) as { next_batch: string };
      const waited = await fetch(`${server.url}/_matrix/client/v3/sync?timeout=${TIMEOUTS.requestMs + 500}&since=${next_batch}`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(waited.status, 200);
      assert.ok(Date.now() - started >= TIMEOUTS.requestMs + 500);
    });

    it('lets an upload trickle for longer than the request limit, as long as it never goes idle', async () => {
      const rowsBefore = await mediaRows();
      const content = randomBytes(30_000);
      const raw = await open(server);
      raw.socket.write(head('POST', `${UPLOAD}?filename=slow.bin`, { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'content-length': content.length }));
      // 1,000 bytes every 100 ms: 3 s in all, three times the request limit, never 700 ms silent.
      const started = Date.now();
      await trickle(raw, split(content, 1_000), 100);
      assert.ok(Date.now() - started > 2 * TIMEOUTS.requestMs);
      await raw.closed;
      assert.equal(statusOf(raw.received()), 200, raw.received());
      const mxc = bodyOf(raw.received()).content_uri as string;
      const download = await fetch(`${server.url}/_matrix/media/v3/download/${mxc.slice('mxc://'.length)}`);
      assert.equal(download.status, 200);
      assert.ok(Buffer.from(await download.arrayBuffer()).equals(content));
      assert.equal(await mediaRows(), rowsBefore + 1);
    });

    it('drops an upload that goes idle past the idle limit, leaving no file and no row', async () => {
      const rowsBefore = await mediaRows();
      for (const [name, framing] of [['announced', { 'content-length': 100_000 }], ['chunked', { 'transfer-encoding': 'chunked' }]] as const) {
        const raw = await open(server);
        raw.socket.write(head('POST', UPLOAD, { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', ...framing }));
        const part = randomBytes(5_000);
        // Busy for longer than the idle limit first, so it is the silence that is cut, not the total.
        const chunks = split(part, 500).map((chunk) => (name === 'chunked' ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]) : chunk));
        await trickle(raw, chunks, 100);
        const silentFrom = Date.now();
        assert.equal(raw.socket.destroyed, false, `${name}: cut while still sending`);
        await raw.closed;
        const silentFor = Date.now() - silentFrom;
        assert.ok(silentFor >= TIMEOUTS.uploadIdleMs - 150, `${name}: cut after ${silentFor} ms of silence`);
        assert.ok(silentFor < TIMEOUTS.uploadIdleMs + 1_000, `${name}: cut only after ${silentFor} ms of silence`);
        assert.equal(statusOf(raw.received()), 408, raw.received());
        // The handler's clean-up runs once the request's stream reports the cut.
        await sleep(200);
        assert.deepEqual(tmpFiles(), [], name);
        assert.equal(await mediaRows(), rowsBefore, name);
      }
    });

    it('cuts a client that trickles its headers past the headers limit', async () => {
      const raw = await open(server);
      const headers = head('GET', '/_matrix/client/versions', { 'x-padding': 'y'.repeat(100) });
      // 5 bytes every 100 ms: the headers would take over 3 s.
      void trickle(raw, split(headers, 5), 100);
      const closedAt = await raw.closed;
      assert.ok(closedAt >= TIMEOUTS.headersMs - 50, `cut after ${closedAt} ms, before the limit`);
      assert.ok(closedAt < TIMEOUTS.headersMs + 1_000, `cut only after ${closedAt} ms`);
      assert.equal(statusOf(raw.received()), 408, raw.received());
    });
  });
}
