import { randomUUID } from 'node:crypto';

/** A rendered mail as it waits in the outbox. It holds the secret link and code until sent. */
export interface EmailPayload {
  to: string;
  subject: string;
  text: string;
  html: string;
  /** Fixed when queued, so that every retry carries the same Message-ID and Date. */
  messageId: string;
  date: number;
  /** The notification mail's unsubscribe link (List-Unsubscribe, RFC 2369; one-click POST, RFC 8058). */
  unsubscribe?: string;
}

/** The sender: `notif_from` with `%(app)s` already substituted, split into name and address. */
export interface Sender {
  name: string;
  address: string;
}

/** Header values never carry line breaks: that is how headers get injected. */
export function assertHeaderSafe(field: string, value: string): void {
  if (/[\r\n\0]/.test(value)) throw new Error(`refusing to send a mail: line break in the ${field} header`);
}

/** A single bare address (canonical form): anything that could make it a list or a display name is refused. */
export function assertSingleAddress(address: string): void {
  assertHeaderSafe('To', address);
  if (!/^[^\s@,;<>"()[\]\\]+@[^\s@,;<>"()[\]\\]+$/.test(address) || address.length > 320) {
    throw new Error('refusing to send a mail: not a single plain email address');
  }
}

/** Parses `Name <addr@host>` or `addr@host`. */
export function parseSender(from: string): Sender {
  assertHeaderSafe('From', from);
  const m = /^\s*(.*?)\s*<([^<>\s]+@[^<>\s]+)>\s*$/.exec(from);
  const sender = m ? { name: m[1]!.replace(/^"(.*)"$/, '$1'), address: m[2]! } : { name: '', address: from.trim() };
  assertSingleAddress(sender.address);
  return sender;
}

export function newMessageId(sender: Sender): string {
  const domain = sender.address.slice(sender.address.lastIndexOf('@') + 1);
  return `<${randomUUID()}@${domain}>`;
}
