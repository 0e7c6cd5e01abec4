import { parentPort, workerData } from 'node:worker_threads';
import type { EmailConfig } from '../../config/sections/email.js';
import { PermanentDeliveryError } from '../channels.js';
import { SmtpTransport } from './smtp.js';
import type { SmtpThreadReply, SmtpThreadRequest } from './smtp-thread-protocol.js';

/** The SMTP thread: sends what the homeserver's thread hands it, over nodemailer's connection pool. */
const port = parentPort;
if (!port) throw new Error('smtp-thread-main runs only as a worker thread');
const transport = new SmtpTransport(workerData as EmailConfig);

port.on('message', (request: SmtpThreadRequest) => {
  if ('close' in request) {
    void transport.close().finally(() => port.close());
    return;
  }
  transport.send(request.from, request.mail).then(
    () => port.postMessage({ id: request.id, ok: true } satisfies SmtpThreadReply),
    (err: unknown) =>
      port.postMessage({
        id: request.id,
        ok: false,
        error: err instanceof Error ? err.message : String(err),
        permanent: err instanceof PermanentDeliveryError,
      } satisfies SmtpThreadReply),
  );
});
