import { createHmac } from 'node:crypto';
import type { Clock } from '../../clock.js';
import type { SmsConfig } from '../../config/sections/sms.js';
import { gatewayError, gatewayFetch, type SmsMessage, type SmsSender } from './types.js';

type WebhookConfig = NonNullable<SmsConfig['webhook']>;

/** The signature header's value for a raw request body: `sha256=<hex HMAC-SHA256>`. */
export function webhookSignature(secret: string, rawBody: string): string {
  return `sha256=${createHmac('sha256', secret).update(rawBody, 'utf8').digest('hex')}`;
}

/**
 * POSTs each message as JSON to an admin's own gateway. With a secret, the raw body is signed, and
 * the body carries a timestamp so the receiver can refuse stale replays.
 */
export class WebhookSender implements SmsSender {
  readonly name = 'webhook';

  constructor(
    private readonly config: WebhookConfig,
    private readonly clock: Clock,
  ) {}

  async send(message: SmsMessage): Promise<void> {
    const payload: Record<string, unknown> = { to: `+${message.to}`, msisdn: message.to, body: message.body, timestamp: this.clock.now() };
    if (message.id !== undefined) payload.id = message.id;
    const raw = JSON.stringify(payload);
    const headers: Record<string, string> = { ...this.config.headers, 'content-type': 'application/json' };
    if (this.config.secret) headers[this.config.signature_header] = webhookSignature(this.config.secret, raw);
    const res = await gatewayFetch(this.name, this.config.url, { method: 'POST', headers, body: raw }, this.config.request_timeout);
    if (!res.ok) throw await gatewayError(this.name, res);
    await res.body?.cancel();
  }
}
