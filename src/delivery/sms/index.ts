import type { Clock } from '../../clock.js';
import type { SmsConfig } from '../../config/sections/sms.js';
import { LogSender, type SmsLog } from './log.js';
import { TwilioSender } from './twilio.js';
import type { SmsSender } from './types.js';
import { WebhookSender } from './webhook.js';

export type { SmsMessage, SmsSender } from './types.js';
export { SmsSendError } from './types.js';

/** The configured SMS provider. */
export function createSmsSender(config: SmsConfig, clock: Clock, log: SmsLog): SmsSender {
  switch (config.provider) {
    case 'twilio':
      return new TwilioSender(config.twilio!);
    case 'webhook':
      return new WebhookSender(config.webhook!, clock);
    case 'log':
      return new LogSender(log);
  }
}
