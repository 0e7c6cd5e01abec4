import { openSync } from 'node:fs';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import pino from 'pino';
import { watchLoopDelay } from './loop-delay.js';

const loop = watchLoopDelay();

/**
 * A reference point between the bare server and Myelin: Fastify with one route answering the same
 * constant JSON body, no hooks. With BENCH_FASTIFY_LOG=1 it gets a pino logger at info level writing
 * to BENCH_FASTIFY_LOG_FILE (Fastify then makes a child logger per request) and logs one line per
 * request, as Myelin does; otherwise no logger at all. Reports its URL over IPC, stops on SIGTERM.
 */
const withLogger = process.env.BENCH_FASTIFY_LOG === '1';
const logger = withLogger ? pino({ level: 'info' }, pino.destination({ dest: openSync(process.env.BENCH_FASTIFY_LOG_FILE ?? '/dev/null', 'a'), sync: false })) : undefined;
const app = (logger ? Fastify({ loggerInstance: logger, logController: new LogController({ disableRequestLogging: true }) }) : Fastify({ logger: false })) as unknown as FastifyInstance;
if (withLogger) {
  app.addHook('onResponse', (request, reply, done) => {
    request.log.info({ method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
    done();
  });
}
const body = { user_id: '@bench:bench.local', device_id: 'BENCHDEVICE' };
app.get('/', async () => body);

const url = await app.listen({ port: 0, host: '127.0.0.1' });
process.send?.({ ready: true, url });
process.on('message', (m: { cpu?: boolean }) => {
  if (m.cpu) process.send?.({ cpu: process.cpuUsage(), loop: loop.take() });
});
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
process.on('disconnect', () => process.exit(0));
