/**
 * What the rest of Myelin hands to delivery. Services enqueue messages in the durable outbox; a
 * worker renders nothing late: the message is rendered when queued and sent (with retries) later.
 */
import type { Store } from '../storage/index.js';

/** Synapse's mail template names (each has .html and .txt). */
export type EmailTemplateName = 'registration' | 'password_reset' | 'add_threepid' | 'already_in_use';
export type SmsTemplateName = 'registration' | 'password_reset' | 'add_threepid';

export interface EmailRequest {
  channel: 'email';
  /** Canonical address. */
  to: string;
  template: EmailTemplateName;
  /** Template variables, Synapse's names: link, token (short code), app_name, server_name, ... */
  vars: Record<string, unknown>;
  /** The request's Accept-Language, to pick a translated template when one exists. */
  acceptLanguage?: string;
}

/** The mail of an email pusher: its notifications, rendered from notif_template_html / notif_template_text. */
export interface NotificationEmailRequest {
  channel: 'email';
  to: string;
  template: 'notif_mail';
  /** The summary line (Synapse's subjects), already made. */
  subject: string;
  vars: Record<string, unknown>;
  /** The link that deletes the pusher. */
  unsubscribeLink: string;
}

export interface SmsRequest {
  channel: 'sms';
  /** E.164 digits without '+'. */
  to: string;
  template: SmsTemplateName;
  vars: Record<string, unknown>;
}

/** POST /_matrix/identity/v2/3pid/unbind, signed with the server's key, retried until the identity server answers. */
export interface IdentityUnbindRequest {
  channel: 'identity-unbind';
  /** The identity server's name, as bindings record it (host[:port] of a trusted entry). */
  id_server: string;
  mxid: string;
  medium: string;
  address: string;
}

export type DeliveryRequest = EmailRequest | NotificationEmailRequest | SmsRequest | IdentityUnbindRequest;

export interface EnqueueOptions {
  /** At most one message is ever queued per key (e.g. `email:<sid>:<send_attempt>`). */
  dedupeKey?: string;
}

export interface Outbox {
  /** Renders and queues a message; true when queued, false when the dedupe key was already used. */
  enqueue(request: DeliveryRequest, options?: EnqueueOptions): Promise<boolean>;
  /** The same outbox queueing inside `work`, a caller's transaction. */
  within(work: Store): Outbox;
}
