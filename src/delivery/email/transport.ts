import type { EmailPayload, Sender } from './message.js';

/** Something that hands a mail on: an SMTP server, or the log in development. */
export interface EmailTransport {
  send(from: Sender, mail: EmailPayload): Promise<void>;
  close(): Promise<void>;
}
