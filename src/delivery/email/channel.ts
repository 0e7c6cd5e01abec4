import type { Logger } from 'pino';
import { systemClock, type Clock } from '../../clock.js';
import { substitute, type EmailConfig } from '../../config/sections/email.js';
import { maskRecipient, type DeliveryChannel } from '../channels.js';
import type { Templates } from '../templates.js';
import { assertSingleAddress, newMessageId, parseSender, type EmailPayload } from './message.js';
import { LogTransport } from './log.js';
import { ThreadedSmtpTransport } from './smtp-thread.js';
import type { EmailTransport } from './transport.js';

/**
 * The 'email' channel: renders with the templates when queued, sends through SMTP (or the log).
 * The Date header is the time of queueing on the outbox's clock, whatever the retries after it.
 */
export function emailChannel(config: EmailConfig, templates: Templates, makeTransport?: (logger: Logger) => EmailTransport, clock: Clock = systemClock): DeliveryChannel {
  const sender = parseSender(substitute(config.notif_from, { app: config.app_name }));
  return {
    render(request) {
      if (request.channel !== 'email') throw new Error(`email channel cannot render a ${request.channel} message`);
      assertSingleAddress(request.to);
      if (request.template === 'notif_mail') {
        const mail = templates.renderMail({ html: config.notif_template_html, text: config.notif_template_text }, request.subject, request.vars);
        const payload: EmailPayload = { to: request.to, subject: mail.subject, text: mail.text, html: mail.html, messageId: newMessageId(sender), date: clock.now(), unsubscribe: request.unsubscribeLink };
        return payload;
      }
      const mail = templates.renderEmail(request.template, request.vars, request.acceptLanguage);
      const payload: EmailPayload = { to: request.to, subject: mail.subject, text: mail.text, html: mail.html, messageId: newMessageId(sender), date: clock.now() };
      return payload;
    },
    provider(logger) {
      const transport = makeTransport ? makeTransport(logger) : config.transport === 'log' ? new LogTransport(logger) : new ThreadedSmtpTransport(config);
      return {
        send: (payload) => transport.send(sender, payload as EmailPayload),
        describe: (payload) => ({ to: maskRecipient((payload as EmailPayload).to), message_id: (payload as EmailPayload).messageId }),
        close: () => transport.close(),
      };
    },
  };
}
