import { z } from 'zod';
import { duration } from '../duration.js';

/*
 * Phone number verification: Myelin sends the SMS itself. Example homeserver.yaml:
 *
 *   sms:
 *     provider: twilio              # twilio | webhook | log (log: development only, prints the code)
 *     twilio:
 *       account_sid: ACxxxxxxxx
 *       auth_token: ...             # better: MYELIN__SMS__TWILIO__AUTH_TOKEN in the environment
 *       from: "+15005550006"        # or messaging_service_sid: MGxxxxxxxx
 *       # api_base_url: https://api.twilio.com   (any Twilio-compatible gateway)
 *     # webhook: {url: https://sms-gw.example/send, headers: {Authorization: "Bearer ..."}, secret: ...}
 *     #   POSTs {"to": "+E164", "msisdn", "body", "timestamp", "id"}; with a secret, the header
 *     #   X-Myelin-Signature: sha256=<hex HMAC-SHA256 of the raw body>.
 *     validation_token_lifetime: 10m
 *     code_length: 6
 *     max_per_number_per_day: 10
 *     max_per_hour: 500             # all numbers, all Myelin processes together
 *     # allowed_country_codes: [DE, FR]
 *     denied_country_codes: []
 *     sms_templates:
 *       registration: "{code} is your {app_name} verification code."
 *   registrations_require_3pid: [msisdn]   # or [email], or [email, msisdn]
 *   enable_msisdn_password_reset: false    # SIM swaps and recycled numbers: opt in knowingly
 */

/** The placeholders an SMS template may use. None of them carries user input. */
export const SMS_TEMPLATE_VARS = ['app_name', 'code', 'server_name'] as const;

const DEFAULT_TEMPLATES = {
  registration: '{code} is your {app_name} verification code.',
  password_reset: '{code} is your {app_name} password reset code. If you did not ask to reset your password, ignore this message.',
  add_threepid: '{code} is your {app_name} code to add this phone number to your account.',
};

const template = z
  .string()
  .min(1)
  .max(640)
  .refine((text) => text.includes('{code}'), 'must contain {code}')
  .refine(
    (text) => [...text.matchAll(/\{([a-z_]+)\}/g)].every((m) => (SMS_TEMPLATE_VARS as readonly string[]).includes(m[1]!)),
    `may only use the placeholders ${SMS_TEMPLATE_VARS.map((v) => `{${v}}`).join(', ')}`,
  );

const countryCode = z
  .string()
  .regex(/^[A-Za-z]{2}$/, 'must be an ISO 3166-1 alpha-2 country code')
  .transform((c) => c.toUpperCase());

const twilio = z
  .object({
    account_sid: z.string().min(1),
    auth_token: z.string().min(1),
    /** A Twilio phone number (E.164) or alphanumeric sender ID; or use messaging_service_sid. */
    from: z.string().min(1).optional(),
    messaging_service_sid: z.string().min(1).optional(),
    /** Twilio's API, or any Twilio-compatible gateway. */
    api_base_url: z.url({ protocol: /^https?$/ }).default('https://api.twilio.com'),
    request_timeout: duration.default(10_000),
  })
  .refine((t) => (t.from === undefined) !== (t.messaging_service_sid === undefined), 'set exactly one of from and messaging_service_sid');

const webhook = z.object({
  url: z.url({ protocol: /^https?$/ }),
  /** Extra request headers, e.g. an Authorization header for the gateway. */
  headers: z.record(z.string(), z.string()).default({}),
  /** When set, each request carries an HMAC-SHA256 of its raw body under this key. */
  secret: z.string().min(1).optional(),
  signature_header: z.string().regex(/^[A-Za-z0-9-]+$/).default('X-Myelin-Signature'),
  request_timeout: duration.default(10_000),
});

const sms = z
  .object({
    /** twilio: Twilio's REST API; webhook: POST JSON to a URL; log: print to the log (development only). */
    provider: z.enum(['twilio', 'webhook', 'log']),
    twilio: twilio.optional(),
    webhook: webhook.optional(),
    /** The name in the message; defaults to email.app_name, then "Matrix". */
    app_name: z.string().min(1).max(64).optional(),
    validation_token_lifetime: duration.default(10 * 60_000),
    code_length: z.number().int().min(4).max(10).default(6),
    /**
     * SMS to one number: a bucket of this many, refilled evenly over 24 hours (so at most this many
     * at once, then one every 24h / max_per_number_per_day).
     */
    max_per_number_per_day: z.number().int().positive().default(10),
    /** SMS from this homeserver (all processes together): a bucket of this many, refilled evenly over an hour. */
    max_per_hour: z.number().int().positive().default(500),
    /**
     * When set, only numbers of these countries get an SMS (toll-fraud and SMS-pumping defence).
     * Whatever the lists, only mobile numbers of some country get one (no premium-rate, toll-free,
     * fixed-line or non-geographic numbers).
     */
    allowed_country_codes: z.array(countryCode).optional(),
    denied_country_codes: z.array(countryCode).default([]),
    /** Message text per flow; placeholders {code}, {app_name}, {server_name}. */
    sms_templates: z
      .object({
        registration: template.default(DEFAULT_TEMPLATES.registration),
        password_reset: template.default(DEFAULT_TEMPLATES.password_reset),
        add_threepid: template.default(DEFAULT_TEMPLATES.add_threepid),
      })
      .prefault({}),
  })
  .superRefine((value, ctx) => {
    if (value.provider === 'twilio' && !value.twilio) ctx.addIssue({ code: 'custom', path: ['twilio'], message: 'required when provider is twilio' });
    if (value.provider === 'webhook' && !value.webhook) ctx.addIssue({ code: 'custom', path: ['webhook'], message: 'required when provider is webhook' });
  });

export type SmsConfig = z.infer<typeof sms>;

export const smsConfigSection = {
  /** Phone number verification by SMS, sent by Myelin itself. Absent: phone numbers cannot be verified. */
  sms: sms.optional(),
  /**
   * Lets a user reset their password with a code sent to their phone number. Off by default:
   * numbers get recycled and SIM-swapped, so an admin should opt in knowingly.
   */
  enable_msisdn_password_reset: z.boolean().default(false),
};
