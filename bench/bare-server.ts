import { createServer } from 'node:http';
import { watchLoopDelay } from './loop-delay.js';

const loop = watchLoopDelay();

/**
 * The baseline: a bare Node HTTP server answering every request with one constant JSON body.
 * Run as a child process of bench/run.ts; it reports its port over IPC and stops on SIGTERM.
 */
const body = JSON.stringify({ user_id: '@bench:bench.local', device_id: 'BENCHDEVICE' });

const server = createServer((req, res) => {
  // Drain any request body so keep-alive connections stay usable.
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});

server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  process.send?.({ ready: true, url: `http://127.0.0.1:${address.port}` });
});

// CPU time used so far, so the benchmark can report CPU per request whatever else the machine runs.
process.on('message', (m: { cpu?: boolean }) => {
  if (m.cpu) process.send?.({ cpu: process.cpuUsage(), loop: loop.take() });
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
process.on('disconnect', () => process.exit(0));
