import type { Logger } from 'pino';
import type { DeliveryRequest } from './types.js';

/** Turns a request into the message stored in the outbox (JSON-serialisable), when it is queued. */
export type ChannelRenderer = (request: DeliveryRequest) => unknown;

/** Sends stored messages of one channel. */
export interface ChannelProvider {
  /** Sends one message; throws to have it retried later (or PermanentDeliveryError to give up now). */
  send(payload: unknown, meta: { id: string; attempt: number }): Promise<void>;
  /** Where a message goes, for logs: no secrets, recipient masked. */
  describe(payload: unknown): Record<string, unknown>;
  close?(): Promise<void>;
}

/** A failure that retrying cannot fix (e.g. the recipient does not exist). */
export class PermanentDeliveryError extends Error {}

/** One channel of the outbox, e.g. 'email' or 'sms'. */
export interface DeliveryChannel {
  render: ChannelRenderer;
  /** Made when the worker starts, with the homeserver's logger. */
  provider: (logger: Logger) => ChannelProvider;
}

/** `alice@example.org` -> `a***@example.org`; `33612345678` -> `*******5678`. */
export function maskRecipient(to: string): string {
  const at = to.lastIndexOf('@');
  if (at > 0) return `${to[0]}***${to.slice(at)}`;
  return to.length > 4 ? `${'*'.repeat(to.length - 4)}${to.slice(-4)}` : '****';
}
