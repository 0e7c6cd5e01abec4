import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../clock.js';
import type { Config } from '../config/index.js';
import { ConfigError } from '../config/load.js';
import { DEFAULT_ADD_THREEPID_SUBJECT, DEFAULT_SUBJECTS, isEmailConfigured, substitute } from '../config/sections/email.js';
import type { Store } from '../storage/index.js';
import type { ChannelProvider, DeliveryChannel } from './channels.js';
import { emailChannel } from './email/channel.js';
import { DeliveryOutbox } from './outbox.js';
import { PayloadSeal } from './payload-seal.js';
import { Templates } from './templates.js';
import type { EmailTemplateName } from './types.js';
import { OutboxWorker, type WorkerOptions } from './worker.js';

export type { Outbox, DeliveryRequest, EmailRequest, SmsRequest, IdentityUnbindRequest, EnqueueOptions } from './types.js';
export { Templates, type RenderedEmail } from './templates.js';
export { PermanentDeliveryError, maskRecipient, type ChannelProvider, type DeliveryChannel } from './channels.js';
export { deliverySecret } from './payload-seal.js';

/** Mail templates and pages every process can render. */
const EMAIL_TEMPLATES: EmailTemplateName[] = ['registration', 'password_reset', 'add_threepid', 'already_in_use'];
/** The pages of a notification mail's unsubscribe link. */
const UNSUBSCRIBE_PAGES = ['notif_unsubscribe_confirmation', 'notif_unsubscribe_success', 'notif_unsubscribe_failure'].map((page) => `${page}.html`);
const PAGES = ['registration', 'add_threepid', 'password_reset'].flatMap((flow) => ['confirmation', 'success', 'failure'].map((page) => `${flow}_${page}.html`));

export interface Delivery {
  outbox: DeliveryOutbox;
  templates: Templates;
  worker: OutboxWorker;
  /** Adds a channel (e.g. 'sms'): how its requests are rendered when queued, and how they are sent. */
  addChannel(name: string, channel: DeliveryChannel): void;
  /** Starts the worker with every channel added so far. Returns its stopper. */
  start(logger: Logger): () => Promise<void>;
}

export function createTemplates(config: Config): Templates {
  const app = config.email?.app_name ?? 'Matrix';
  const names = { app, server_name: config.server_name };
  const subjects = config.email?.subjects ?? DEFAULT_SUBJECTS;
  const templates = new Templates({
    customDirectory: config.templates.custom_template_directory,
    globals: { app_name: app, server_name: config.server_name },
    subjects: {
      registration: substitute(subjects.email_validation, names),
      add_threepid: substitute(addThreepidSubject(subjects), names),
      password_reset: substitute(subjects.password_reset, names),
      already_in_use: substitute(subjects.email_already_in_use, names),
    },
  });
  templates.check([...EMAIL_TEMPLATES.flatMap((n) => [`${n}.html`, `${n}.txt`]), ...PAGES, ...UNSUBSCRIBE_PAGES]);
  if (config.email?.enable_notifs) {
    const files = [config.email.notif_template_html, config.email.notif_template_text];
    for (const file of files) if (!templates.has(file)) throw new ConfigError(`email: the notification template ${file} is in no template directory`);
    templates.check(files);
  }
  return templates;
}

/** Each flow its own subject, unless a carried-over Synapse config set `email_validation` for both. */
function addThreepidSubject(subjects: { email_validation: string; add_threepid?: string }): string {
  if (subjects.add_threepid !== undefined) return subjects.add_threepid;
  return subjects.email_validation !== DEFAULT_SUBJECTS.email_validation ? subjects.email_validation : DEFAULT_ADD_THREEPID_SUBJECT;
}

/**
 * The outbox, its worker and the templates; the 'email' channel when email is configured. `clock`
 * times the queue (when a message is due, each retry's wait).
 */
export function createDelivery(config: Config, store: Store, workerOptions: Partial<WorkerOptions> = {}, clock: Clock = systemClock): Delivery {
  const templates = createTemplates(config);
  // Only a process with a channel queues or sends anything; only then must it have a key.
  const queues = isEmailConfigured(config) || config.sms !== undefined || config.trusted_third_party_id_servers.length > 0;
  const seal = queues ? PayloadSeal.forConfig(config) : PayloadSeal.fromSecret(randomBytes(32));
  const worker = new OutboxWorker(store.outbox, seal, {
    pollIntervalMs: config.outbox.poll_interval,
    maxAttempts: config.outbox.max_attempts,
    maxRetryIntervalMs: config.outbox.max_retry_interval,
    retentionMs: config.outbox.retention,
    ...workerOptions,
  }, clock);
  const outbox = new DeliveryOutbox(store, seal, () => worker.poke(), clock);
  const channels = new Map<string, DeliveryChannel>();
  const delivery: Delivery = {
    outbox,
    templates,
    worker,
    addChannel(name, channel) {
      channels.set(name, channel);
      outbox.addChannel(name, channel.render);
    },
    start(logger) {
      const providers = new Map<string, ChannelProvider>();
      for (const [name, channel] of channels) providers.set(name, channel.provider(logger));
      return worker.start(logger, providers);
    },
  };
  if (isEmailConfigured(config)) delivery.addChannel('email', emailChannel(config.email, templates, undefined, clock));
  return delivery;
}
