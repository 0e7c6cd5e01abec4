import type { Logger } from 'pino';
import { maskRecipient } from '../channels.js';
import { assertHeaderSafe, assertSingleAddress, type EmailPayload, type Sender } from './message.js';
import type { EmailTransport } from './transport.js';

/**
 * Development mode (`email.transport: log`): mails go to the log instead of a server. The text
 * part, with its link and code, is logged at info level, since following that link is the point of
 * this mode; the HTML part only at debug. Never use it in production: anyone who reads the log can
 * take over the accounts whose mails it shows.
 */
export class LogTransport implements EmailTransport {
  constructor(private readonly logger: Logger) {
    logger.warn('email.transport is "log": mails are written to this log (links and codes included), not sent');
  }

  async send(from: Sender, mail: EmailPayload): Promise<void> {
    assertSingleAddress(mail.to);
    assertHeaderSafe('Subject', mail.subject);
    this.logger.info({ mail: { from: from.address, to: mail.to, subject: mail.subject, message_id: mail.messageId, text: mail.text } }, 'email (transport: log, not sent)');
    this.logger.debug({ mail: { to: maskRecipient(mail.to), html: mail.html } }, 'email HTML part');
  }

  async close(): Promise<void> {}
}
