import { z } from 'zod';
import { duration } from '../duration.js';

/** Synapse's subject lines; `%(app)s` is the app name, `%(server_name)s` the server name. */
export const DEFAULT_SUBJECTS = {
  message_from_person_in_room: '[%(app)s] You have a message on %(app)s from %(person)s in the %(room)s room...',
  message_from_person: '[%(app)s] You have a message on %(app)s from %(person)s...',
  messages_from_person: '[%(app)s] You have messages on %(app)s from %(person)s...',
  messages_in_room: '[%(app)s] You have messages on %(app)s in the %(room)s room...',
  messages_in_room_and_others: '[%(app)s] You have messages on %(app)s in the %(room)s room and others...',
  messages_from_person_and_others: '[%(app)s] You have messages on %(app)s from %(person)s and others...',
  invite_from_person_to_room: '[%(app)s] %(person)s has invited you to join the %(room)s room on %(app)s...',
  invite_from_person: '[%(app)s] %(person)s has invited you to chat on %(app)s...',
  password_reset: '[%(server_name)s] Password reset',
  email_validation: '[%(server_name)s] Validate your email',
  email_already_in_use: '[%(server_name)s] Email already in use',
} as const;

/**
 * Myelin's default subject of the add-address mail. Synapse sends that mail under `email_validation`,
 * like the registration mail; a config that sets `email_validation` keeps that meaning, and
 * `subjects.add_threepid` (Myelin's own key) sets this one alone.
 */
export const DEFAULT_ADD_THREEPID_SUBJECT = '[%(server_name)s] Confirm the address to add to your account';

const noLineBreaks = (s: string) => !/[\r\n]/.test(s);

const httpUrl = z
  .string()
  .refine((s) => URL.canParse(s) && ['http:', 'https:'].includes(new URL(s).protocol), 'must be an http(s) URL')
  .transform((s) => s.replace(/\/+$/, ''));

/** A file name in a template directory, no path. */
const templateFile = z.string().regex(/^[A-Za-z0-9_.-]+\.(html|txt)$/, 'must be a file name ending .html or .txt, without a directory');

const subjects = z
  .object(
    Object.fromEntries(
      Object.entries(DEFAULT_SUBJECTS).map(([key, value]) => [key, z.string().refine(noLineBreaks, 'must be one line').default(value)]),
    ) as { [K in keyof typeof DEFAULT_SUBJECTS]: z.ZodDefault<z.ZodString> },
  )
  .extend({ add_threepid: z.string().refine(noLineBreaks, 'must be one line').optional() })
  .prefault({});

export const emailConfig = z.object({
  smtp_host: z.string().min(1).default('localhost'),
  smtp_port: z.number().int().min(1).max(65535).default(25),
  smtp_user: z.string().optional(),
  smtp_pass: z.string().optional(),
  /** Implicit TLS from the first byte (usually port 465). */
  force_tls: z.boolean().default(false),
  /** Refuse to send unless STARTTLS succeeds. */
  require_transport_security: z.boolean().default(false),
  /** Use STARTTLS when the server offers it. */
  enable_tls: z.boolean().default(true),
  /** The name to check the server's certificate against (default: smtp_host). */
  tlsname: z.string().optional(),
  /** The From header, e.g. "%(app)s <noreply@example.org>". */
  notif_from: z
    .string()
    .refine(noLineBreaks, 'must be one line')
    .refine((s) => /@[^@\s>]+/.test(s), 'must contain an email address, e.g. "%(app)s <noreply@example.org>"'),
  app_name: z.string().refine(noLineBreaks, 'must be one line').default('Matrix'),
  validation_token_lifetime: duration.default(3_600_000),
  subjects,
  /** Myelin: `log` writes mails to the log instead of sending them (development only). */
  transport: z.enum(['smtp', 'log']).default('smtp'),
  /** Email pushers mail the notifications still unread after `notif_delay_before_mail`. */
  enable_notifs: z.boolean().default(false),
  /** With enable_notifs: an account registered with an email address gets an email pusher for it. */
  notif_for_new_users: z.boolean().default(true),
  /** The web client the notification mails link to (rooms and events); matrix.to links when unset. */
  client_base_url: httpUrl.optional(),
  /** Synapse's former name of client_base_url, still read when client_base_url is absent. */
  riot_base_url: httpUrl.optional(),
  /** Template file names (in custom_template_directory or the shipped ones) of the notification mail. */
  notif_template_html: templateFile.default('notif_mail.html'),
  notif_template_text: templateFile.default('notif_mail.txt'),
  /** How long a notification stays unread before it is mailed. */
  notif_delay_before_mail: duration.default(10 * 60_000),
});

export type EmailConfig = z.infer<typeof emailConfig>;

/** Keys this area adds to the top level of the config. */
export const emailSection = {
  /** Present (with notif_from) when the homeserver sends mail itself. */
  email: emailConfig.optional(),
  templates: z
    .object({
      /** Files here replace the shipped templates of the same name. */
      custom_template_directory: z.string().min(1).optional(),
    })
    .prefault({}),
  /** Myelin: the durable outbox that sends mail (and other messages) with retries. */
  outbox: z
    .object({
      /** How often each process looks for due messages queued elsewhere. */
      poll_interval: duration.default(5_000),
      /** After this many failed tries a message is given up and marked dead. */
      max_attempts: z.number().int().min(1).default(20),
      /** Longest wait between two tries. */
      max_retry_interval: duration.default(5 * 60_000),
      /** Sent and dead messages are deleted after this long. */
      retention: duration.default(7 * 86_400_000),
    })
    .prefault({}),
};

/** True when the homeserver sends mail itself (the `email` section is present). */
export function isEmailConfigured(config: { email?: EmailConfig }): config is { email: EmailConfig } {
  return config.email !== undefined;
}

/** Python-style `%(name)s` substitution, as Synapse's config strings use; `%%` is a literal %. */
export function substitute(template: string, vars: Record<string, string>): string {
  return template.replace(/%%|%\((\w+)\)s/g, (match, name: string | undefined) => {
    if (match === '%%') return '%';
    return name !== undefined && name in vars ? vars[name]! : match;
  });
}
