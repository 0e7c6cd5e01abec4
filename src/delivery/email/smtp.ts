import nodemailer, { type Transporter } from 'nodemailer';
import type { EmailConfig } from '../../config/sections/email.js';
import { PermanentDeliveryError } from '../channels.js';
import { assertHeaderSafe, assertSingleAddress, type EmailPayload, type Sender } from './message.js';
import type { EmailTransport } from './transport.js';

/** Sends mail through the configured SMTP server, with Synapse's TLS settings. */
export class SmtpTransport implements EmailTransport {
  private readonly transporter: Transporter;

  constructor(config: EmailConfig) {
    this.transporter = nodemailer.createTransport({
      host: config.smtp_host,
      port: config.smtp_port,
      secure: config.force_tls,
      requireTLS: config.require_transport_security,
      ignoreTLS: !config.enable_tls && !config.require_transport_security && !config.force_tls,
      tls: { servername: config.tlsname ?? config.smtp_host },
      auth: config.smtp_user !== undefined ? { user: config.smtp_user, pass: config.smtp_pass ?? '' } : undefined,
      pool: true,
      maxConnections: 20,
      maxMessages: 1000,
      // Well inside the outbox lease, so that no other worker takes a message still being sent.
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 30_000,
      disableFileAccess: true,
      disableUrlAccess: true,
    });
  }

  async send(from: Sender, mail: EmailPayload): Promise<void> {
    assertSingleAddress(mail.to);
    assertHeaderSafe('Subject', mail.subject);
    assertHeaderSafe('Message-ID', mail.messageId);
    if (mail.unsubscribe !== undefined) assertHeaderSafe('List-Unsubscribe', mail.unsubscribe);
    try {
      await this.transporter.sendMail({
        from: { name: from.name, address: from.address },
        to: { name: '', address: mail.to },
        subject: mail.subject,
        text: mail.text,
        html: mail.html,
        messageId: mail.messageId,
        date: new Date(mail.date),
        headers: {
          'Auto-Submitted': 'auto-generated',
          ...(mail.unsubscribe !== undefined ? { 'List-Unsubscribe': `<${mail.unsubscribe}>`, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' } : {}),
        },
        // As Synapse sends its mails; cheaper to encode than quoted-printable, which nodemailer would pick.
        textEncoding: 'base64',
        disableFileAccess: true,
        disableUrlAccess: true,
      });
    } catch (err) {
      const e = err as { code?: string; responseCode?: number; message?: string };
      // The server refused the recipient for good (e.g. 550 no such mailbox): retrying cannot help.
      if (e.code === 'EENVELOPE' && typeof e.responseCode === 'number' && e.responseCode >= 500) {
        throw new PermanentDeliveryError(`recipient refused: ${e.responseCode}`);
      }
      throw err;
    }
  }

  async close(): Promise<void> {
    this.transporter.close();
  }
}
