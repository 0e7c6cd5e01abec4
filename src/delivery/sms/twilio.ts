import type { SmsConfig } from '../../config/sections/sms.js';
import { gatewayError, gatewayFetch, type SmsMessage, type SmsSender } from './types.js';

type TwilioConfig = NonNullable<SmsConfig['twilio']>;

/** Sends through Twilio's Programmable Messaging REST API (or a Twilio-compatible gateway). */
export class TwilioSender implements SmsSender {
  readonly name = 'twilio';
  private readonly url: string;
  private readonly authorization: string;

  constructor(private readonly config: TwilioConfig) {
    const base = config.api_base_url.replace(/\/+$/, '');
    this.url = `${base}/2010-04-01/Accounts/${encodeURIComponent(config.account_sid)}/Messages.json`;
    this.authorization = `Basic ${Buffer.from(`${config.account_sid}:${config.auth_token}`, 'utf8').toString('base64')}`;
  }

  async send(message: SmsMessage): Promise<void> {
    const form = new URLSearchParams();
    form.set('To', `+${message.to}`);
    if (this.config.messaging_service_sid) form.set('MessagingServiceSid', this.config.messaging_service_sid);
    else form.set('From', this.config.from!);
    form.set('Body', message.body);
    const res = await gatewayFetch(
      this.name,
      this.url,
      {
        method: 'POST',
        headers: {
          authorization: this.authorization,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: form.toString(),
      },
      this.config.request_timeout,
    );
    if (!res.ok) throw await gatewayError(this.name, res);
    await res.body?.cancel();
  }
}
