import type { SmsMessage, SmsSender } from './types.js';

export interface SmsLog {
  warn(obj: Record<string, unknown>, msg: string): void;
}

/** Development only: prints each message, code included, to the log instead of sending it. */
export class LogSender implements SmsSender {
  readonly name = 'log';

  constructor(private readonly log: SmsLog) {}

  async send(message: SmsMessage): Promise<void> {
    this.log.warn({ sms: { to: `+${message.to}`, body: message.body } }, 'SMS not sent (sms.provider is log)');
  }
}
