import type { Worker } from 'node:worker_threads';
import type { EmailConfig } from '../../config/sections/email.js';
import { PermanentDeliveryError } from '../channels.js';
import { startModuleThread } from '../worker-thread.js';
import type { EmailPayload, Sender } from './message.js';
import type { SmtpThreadReply, SmtpThreadRequest } from './smtp-thread-protocol.js';
import type { EmailTransport } from './transport.js';

const CLOSE_GRACE_MS = 5_000;

interface Waiting {
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * SMTP from a thread of its own: building MIME and talking SMTP cost about as much CPU as the
 * request that queued the mail, so on the homeserver's event loop a flood of requests starved the
 * outbox. The thread starts with the first mail and again if it dies; a mail in flight when it
 * dies fails, and the outbox retries it.
 */
export class ThreadedSmtpTransport implements EmailTransport {
  private thread: { worker: Worker; pending: Map<number, Waiting> } | undefined;
  private nextId = 0;

  constructor(private readonly config: EmailConfig) {}

  send(from: Sender, mail: EmailPayload): Promise<void> {
    const thread = this.thread ?? this.start();
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      thread.pending.set(id, { resolve, reject });
      thread.worker.postMessage({ id, from, mail } satisfies SmtpThreadRequest);
    });
  }

  /** Lets the thread finish what it is sending and close its SMTP connections (at most 5 s). */
  async close(): Promise<void> {
    const thread = this.thread;
    if (!thread) return;
    this.thread = undefined;
    const exited = new Promise<void>((resolve) => thread.worker.once('exit', () => resolve()));
    const timer = setTimeout(() => void thread.worker.terminate(), CLOSE_GRACE_MS);
    thread.worker.postMessage({ close: true } satisfies SmtpThreadRequest);
    await exited;
    clearTimeout(timer);
  }

  private start(): { worker: Worker; pending: Map<number, Waiting> } {
    const worker = startModuleThread(import.meta.url, './smtp-thread-main', this.config);
    const thread = { worker, pending: new Map<number, Waiting>() };
    // The homeserver's lifetime is its HTTP listener's; this thread must not hold a process open.
    worker.unref();
    worker.on('message', (reply: SmtpThreadReply) => {
      const waiting = thread.pending.get(reply.id);
      if (!waiting) return;
      thread.pending.delete(reply.id);
      if (reply.ok) waiting.resolve();
      else waiting.reject(reply.permanent ? new PermanentDeliveryError(reply.error) : new Error(reply.error));
    });
    const lost = (why: string) => {
      if (this.thread === thread) this.thread = undefined;
      for (const waiting of thread.pending.values()) waiting.reject(new Error(why));
      thread.pending.clear();
    };
    worker.on('error', (err) => lost(`SMTP thread failed: ${err.message}`));
    worker.on('exit', (code) => lost(`SMTP thread exited (code ${code})`));
    this.thread = thread;
    return thread;
  }
}
