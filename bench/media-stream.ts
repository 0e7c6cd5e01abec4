/**
 * Memory of the server while it takes and serves a large file: media bodies must stream to and
 * from disk, never be held whole.
 *
 *   npx tsx bench/media-stream.ts [--size-mb 100] [--variants dist,bare] [--compare ../other-checkout]
 *                                 [--settle 30] [--rounds 1] [--no-build]
 *
 * Variants, run one after the other in each round (interleaved over --rounds):
 * - `dist`: this checkout's build, `node dist/main.js start` (built first unless --no-build), as `npm start` runs it;
 * - `tsx`: this checkout's sources, `node --import tsx src/main.ts start`;
 * - `bare`: bench/bare-media-server.ts, a bare Node HTTP server piping the body to a file and the
 *   file back (no routing, auth, database or thumbnail step): what the same bytes cost Node itself;
 * - `compare` (with --compare DIR): another checkout's build, `node DIR/dist/main.js start` (built
 *   there first unless --no-build), e.g. main's, side by side in the same run.
 * Each starts as its own process on a fresh SQLite database and media store; a user registers, a
 * 1 MB file goes up and down, then the server is left idle for --settle seconds (a server that
 * has been up a little while, not one still in its start-up), then one of --size-mb: a streamed
 * POST /upload with a Content-Length, then a GET of it whose bytes are hashed and thrown away.
 * Then a 2 MP JPEG's 640x480 thumbnail: the first request (made by sharp), then 20 more (from disk).
 * The server's resident memory (VmRSS) is sampled every 10 ms from /proc; VmHWM gives the peak of
 * each step, reset (clear_refs) before each large step; `transfer_peak_mb` is the peak across the
 * upload and the download. Printed, and written to bench/results/media-stream-<timestamp>.json with
 * the load average and the commits.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Api } from '../test/helpers/api.js';
import { startBuiltServer } from './built-server.js';
import { commitOf, load } from './conditions.js';

const ROOT = join(import.meta.dirname, '..');
const { values: flags } = parseArgs({
  options: {
    'size-mb': { type: 'string', default: '100' },
    variants: { type: 'string', default: 'dist,bare' },
    /** Kept for older command lines: one variant. */
    variant: { type: 'string' },
    compare: { type: 'string' },
    settle: { type: 'string', default: '30' },
    rounds: { type: 'string', default: '1' },
    'no-build': { type: 'boolean', default: false },
  },
});
const SIZE = Number(flags['size-mb']) * 1024 * 1024;
const SETTLE_MS = Number(flags.settle) * 1000;
const ROUNDS = Number(flags.rounds);
const CHUNK = 64 * 1024;
const COMPARE = flags.compare === undefined ? undefined : resolve(flags.compare);
const VARIANTS = [...(flags.variant ?? flags.variants).split(',').map((v) => v.trim()), ...(COMPARE ? ['compare'] : [])];
for (const v of VARIANTS) if (!['dist', 'tsx', 'bare', 'compare'].includes(v)) throw new Error(`unknown variant ${v}`);

/** Resets the process's VmHWM to its current RSS (Linux: clear_refs 5), so the next peak is the next step's. */
const resetPeak = (pid: number) => writeFileSync(`/proc/${pid}/clear_refs`, '5');

const memory = (pid: number) => {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
};

/** A deterministic byte pattern, made chunk by chunk (the client holds no more than one chunk either). */
function chunkAt(offset: number, length: number): Buffer {
  const chunk = Buffer.alloc(length);
  for (let i = 0; i < length; i += 4) chunk.writeUInt32LE(((offset + i) * 2654435761) >>> 0, i);
  return chunk;
}

async function uploadStreamed(url: string, token: string, size: number): Promise<{ mxc: string; sha: string; ms: number }> {
  const hash = createHash('sha256');
  const started = performance.now();
  const body = await new Promise<string>((resolve, reject) => {
    const req = request(`${url}/_matrix/media/v3/upload?filename=big.bin`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'content-length': String(size) },
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`${res.statusCode} ${text}`))));
    });
    req.on('error', reject);
    let offset = 0;
    const write = () => {
      while (offset < size) {
        const chunk = chunkAt(offset, Math.min(CHUNK, size - offset));
        hash.update(chunk);
        offset += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', write);
      }
      req.end();
    };
    write();
  });
  return { mxc: (JSON.parse(body) as { content_uri: string }).content_uri, sha: hash.digest('hex'), ms: performance.now() - started };
}

async function uploadStreamedBytes(url: string, token: string, bytes: Buffer, type: string): Promise<string> {
  const res = await fetch(`${url}/_matrix/media/v3/upload`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': type }, body: new Uint8Array(bytes) });
  if (res.status !== 200) throw new Error(`upload: ${res.status}`);
  return ((await res.json()) as { content_uri: string }).content_uri;
}

async function downloadHashed(url: string, mxc: string): Promise<{ sha: string; bytes: number; ms: number }> {
  const started = performance.now();
  const [, , server, id] = mxc.split('/');
  return new Promise((resolve, reject) => {
    request(`${url}/_matrix/media/v3/download/${server}/${id}`, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`download: ${res.statusCode}`));
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        hash.update(c);
        bytes += c.length;
      });
      res.on('end', () => resolve({ sha: hash.digest('hex'), bytes, ms: performance.now() - started }));
    })
      .on('error', reject)
      .end();
  });
}

const build = (dir: string) => execFileSync('npm', ['run', 'build'], { cwd: dir, stdio: 'inherit' });
if (!flags['no-build']) {
  if (VARIANTS.includes('dist')) build(ROOT);
  if (COMPARE) build(COMPARE);
}

function commandOf(variant: string, port: number, dir: string, configPath: string): { cwd: string; args: string[] } {
  if (variant === 'bare') return { cwd: ROOT, args: ['--import', 'tsx', 'bench/bare-media-server.ts', String(port), dir] };
  if (variant === 'tsx') return { cwd: ROOT, args: ['--import', 'tsx', 'src/main.ts', 'start', '--config', configPath] };
  return { cwd: variant === 'compare' ? COMPARE! : ROOT, args: ['dist/main.js', 'start', '--config', configPath] };
}

async function runVariant(variant: string) {
  const BARE = variant === 'bare';
  const { child, url, dir } = await startBuiltServer({
    prefix: 'myelin-media-bench-',
    extra: { max_upload_size: `${Math.ceil(SIZE / 1024 / 1024) + 1}M` },
    command: (port, tmp, configPath) => commandOf(variant, port, tmp, configPath),
  });
  const pid = child.pid!;
  let peakSampled = 0;
  const sampler = setInterval(() => (peakSampled = Math.max(peakSampled, memory(pid).rss)), 10);
  try {
    const atStart = memory(pid).rss;
    const access_token = BARE ? 'none' : (await new Api(url).register('bench', 'bench password 1')).access_token;
    const small = await uploadStreamed(url, access_token, 1024 * 1024);
    await downloadHashed(url, small.mxc);
    await new Promise((r) => setTimeout(r, 200));
    const baseline = { rss_mb: memory(pid).rss, peak_mb: memory(pid).hwm };
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const settled = memory(pid).rss;
    peakSampled = 0;
    resetPeak(pid);
    const up = await uploadStreamed(url, access_token, SIZE);
    const afterUpload = { rss_mb: memory(pid).rss, peak_mb: memory(pid).hwm, peak_sampled_mb: peakSampled };
    const transferSampled = peakSampled;
    peakSampled = 0;
    resetPeak(pid);
    const down = await downloadHashed(url, up.mxc);
    if (down.sha !== up.sha || down.bytes !== SIZE) throw new Error('the downloaded bytes differ from the uploaded ones');
    const afterDownload = { rss_mb: memory(pid).rss, peak_mb: memory(pid).hwm, peak_sampled_mb: peakSampled };
    // A 2 MP JPEG: its first 640x480 thumbnail is made, the next ones are read from disk.
    const thumbnail = BARE ? undefined : await thumbnailFigures(url, access_token, pid);
    return {
      variant,
      ...(variant === 'compare' ? { checkout: COMPARE, ...commitOf(COMPARE!) } : {}),
      size_mb: SIZE / 1024 / 1024,
      rss_at_start_mb: atStart,
      baseline_after_1mb: baseline,
      settle_s: SETTLE_MS / 1000,
      rss_settled_mb: settled,
      transfer_peak_mb: Math.max(afterUpload.peak_mb, afterDownload.peak_mb),
      transfer_peak_sampled_mb: Math.max(transferSampled, afterDownload.peak_sampled_mb),
      upload: { ...afterUpload, seconds: up.ms / 1000, mb_per_s: SIZE / 1024 / 1024 / (up.ms / 1000) },
      download: { ...afterDownload, seconds: down.ms / 1000, mb_per_s: SIZE / 1024 / 1024 / (down.ms / 1000) },
      thumbnail_2mp_jpeg: thumbnail,
      rss_at_end_mb: memory(pid).rss,
      load: load(),
    };
  } finally {
    clearInterval(sampler);
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

const loadBefore = load();
const runs = [];
for (let round = 0; round < ROUNDS; round++) for (const variant of VARIANTS) runs.push({ round: round + 1, ...(await runVariant(variant)) });
const mb = (x: number) => x.toFixed(0).padStart(4);
console.log('variant  round  start  settled  upload peak  download peak  transfer peak (MB RSS)  up MB/s  down MB/s');
for (const r of runs) {
  console.log(`${r.variant.padEnd(8)} ${String(r.round).padStart(5)}  ${mb(r.rss_at_start_mb)}  ${mb(r.rss_settled_mb)}     ${mb(r.upload.peak_mb)}         ${mb(r.download.peak_mb)}           ${mb(r.transfer_peak_mb)}                ${mb(r.upload.mb_per_s)}       ${mb(r.download.mb_per_s)}`);
}
const result = { size_mb: SIZE / 1024 / 1024, settle_s: SETTLE_MS / 1000, rounds: ROUNDS, runs, load_before: loadBefore, load_after: load(), ...commitOf(ROOT) };
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
const file = join(ROOT, `bench/results/media-stream-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify(result, null, 2));
console.log(`load average ${loadBefore.join(' ')} before, ${result.load_after.join(' ')} after; ${file}`);

async function thumbnailFigures(url: string, access_token: string, pid: number) {
  const { default: sharp } = await import('sharp');
  const jpeg = await sharp(chunkAt(0, 1920 * 1080 * 3), { raw: { width: 1920, height: 1080, channels: 3 } }).jpeg({ quality: 80 }).toBuffer();
  const image = await uploadStreamedBytes(url, access_token, jpeg, 'image/jpeg');
  const [, , server, id] = image.split('/');
  const thumbnailMs = async () => {
    const started = performance.now();
    const res = await fetch(`${url}/_matrix/media/v3/thumbnail/${server}/${id}?width=640&height=480&method=scale`);
    if (res.status !== 200) throw new Error(`thumbnail: ${res.status}`);
    await res.arrayBuffer();
    return performance.now() - started;
  };
  resetPeak(pid);
  const firstThumbnail = await thumbnailMs();
  const peakThumbnail = memory(pid).hwm;
  const again: number[] = [];
  for (let i = 0; i < 20; i++) again.push(await thumbnailMs());
  again.sort((a, b) => a - b);
  return { jpeg_bytes: jpeg.length, first_ms: firstThumbnail, from_disk_median_ms: again[10], from_disk_max_ms: again[19], peak_rss_first_mb: peakThumbnail };
}
