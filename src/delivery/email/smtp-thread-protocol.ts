import type { EmailPayload, Sender } from './message.js';

/** What the homeserver's thread asks of the SMTP thread. */
export type SmtpThreadRequest = { id: number; from: Sender; mail: EmailPayload } | { close: true };

/** The SMTP thread's answer to one send. */
export type SmtpThreadReply = { id: number; ok: true } | { id: number; ok: false; error: string; permanent: boolean };
