import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

/**
 * The baseline of bench/media-stream.ts: a bare Node HTTP server that streams an upload into a file
 * and a download out of it, nothing else (no routing, auth, database or checks), so the memory a
 * large body costs Node itself is known. Usage: node --import tsx bench/bare-media-server.ts PORT DIR
 */
const [port, dir] = process.argv.slice(2) as [string, string];
const file = join(dir, 'bare-upload.bin');

createServer((req, res) => {
  if (req.method === 'POST' && req.url?.startsWith('/_matrix/media/v3/upload')) {
    pipeline(req, createWriteStream(file)).then(
      () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"content_uri":"mxc://bare/upload"}'),
      () => res.writeHead(500).end(),
    );
  } else if (req.method === 'GET' && req.url === '/_matrix/media/v3/download/bare/upload') {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': statSync(file).size });
    createReadStream(file).pipe(res);
  } else {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  }
}).listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
