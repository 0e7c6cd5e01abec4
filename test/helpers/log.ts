import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';

/** A logger at `level` whose lines (raw JSON, one per entry) are kept in `lines`, for tests that read the log. */
export function capturedLog(level: string): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { logger: pino({ level }, stream), lines };
}
