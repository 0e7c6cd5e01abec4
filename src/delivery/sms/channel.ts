import type { Clock } from '../../clock.js';
import type { Config } from '../../config/index.js';
import { maskRecipient, PermanentDeliveryError, type DeliveryChannel } from '../channels.js';
import { createSmsSender } from './index.js';
import { renderSms, smsAppName } from './template.js';
import { SmsSendError } from './types.js';

/** What the outbox stores for one SMS: the rendered text (it holds the code until sent). */
interface SmsPayload {
  to: string;
  body: string;
}

/**
 * The outbox's 'sms' channel: the text is rendered from the flow's template when queued (the app
 * and server names come from the config, never from the request), and sent by the configured
 * provider. A provider's permanent refusal (e.g. Twilio's 400) is not retried.
 */
export function smsChannel(config: Config, clock: Clock): DeliveryChannel {
  const sms = config.sms;
  if (!sms) throw new Error('sms is not configured');
  const names = { app_name: smsAppName(config), server_name: config.server_name };
  return {
    render(request) {
      if (request.channel !== 'sms') throw new Error(`not an SMS: ${request.channel}`);
      const payload: SmsPayload = { to: request.to, body: renderSms(sms, request.template, { ...request.vars, ...names }) };
      return payload;
    },
    provider(logger) {
      const sender = createSmsSender(sms, clock, logger);
      return {
        async send(payload, meta) {
          const { to, body } = payload as SmsPayload;
          try {
            await sender.send({ to, body, id: meta.id });
          } catch (err) {
            if (err instanceof SmsSendError && err.permanent) throw new PermanentDeliveryError(err.message);
            throw err;
          }
        },
        describe: (payload) => ({ to: maskRecipient((payload as SmsPayload).to), provider: sender.name }),
      };
    },
  };
}
