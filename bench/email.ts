import { randomBytes } from 'node:crypto';
import type autocannon from 'autocannon';
import type { ChildHandle } from './children.js';
import type { Alongside } from './run.js';
import type { MailedSession } from './smtp-sink.js';

/** What the email cases need from run.ts: a case shape, with hooks around each timed run. */
export interface EmailCase {
  name: string;
  server: ChildHandle;
  method: 'POST';
  path: string;
  headers: Record<string, string>;
  setupRequest: (req: autocannon.Request) => autocannon.Request;
  before?: () => Promise<void>;
  after?: (result: autocannon.Result) => Promise<void>;
  overallRate?: number;
  note?: string;
  alongside?: Alongside;
}

export const MAIL_USERS = 100;
export const mailAddress = (i: number) => `bench-${i}@bench.local`;

interface SinkStats {
  received: number;
  unreadable: number;
  pending: number;
}

export async function sinkStats(sink: ChildHandle): Promise<SinkStats> {
  return ((await sink.request({ stats: true }, 'stats')) as { stats: SinkStats }).stats;
}

/** Config for Myelin's `email:` section, pointing at the sink, plus limits raised for throughput. */
export function emailConfig(sinkPort: number): Record<string, unknown> {
  return {
    email: { smtp_host: '127.0.0.1', smtp_port: sinkPort, enable_tls: false, notif_from: 'Myelin bench <noreply@bench.local>' },
    rc_3pid_validation: { per_second: 1_000_000, burst_count: 1_000_000 },
    max_code_attempts_per_address_per_day: 1_000_000_000,
  };
}

/**
 * POST /account/password/email/requestToken (a fresh client_secret each time, for addresses bound to
 * accounts) and the code submit_url (each request validates a session the sink received a mail for,
 * as long as there are any; then it repeats codes of sessions already validated).
 */
export class EmailBench {
  /** requestToken answers that promised a mail (2xx), warm-up included. */
  mailsPromised = 0;
  private counter = 0;
  private repeats = 0;
  private readonly prefix = randomBytes(6).toString('hex');
  private pool: MailedSession[] = [];
  private used: MailedSession[] = [];
  private freshInRun = 0;
  readonly submitFresh: number[] = [];
  /** Per requestToken run: answers and mails per second, and mails still queued when it ended. */
  readonly mailRates: { offered?: number; requestsPerSecond: number; mailsPerSecond: number; backlogAtEnd: number }[] = [];

  constructor(
    private readonly myelin: ChildHandle,
    private readonly sink: ChildHandle,
    /** Offered load of the fixed-rate requestToken case. */
    private readonly mailRate: number,
    /** Appended to case names, to tell Myelins apart (run.ts --compare). */
    private readonly label = '',
  ) {}

  private tokenRequest(): string {
    const n = this.counter++;
    return JSON.stringify({ client_secret: `bench.${this.prefix}.${n.toString(36)}`, email: mailAddress(n % MAIL_USERS), send_attempt: 1 });
  }

  /** One request by hand, through to the mail and the code, so a broken flow fails loudly before timing. */
  async check(): Promise<void> {
    const res = await fetch(`${this.myelin.url}/_matrix/client/v3/account/password/email/requestToken`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: this.tokenRequest(),
    });
    const json = (await res.json()) as { sid?: string; submit_url?: string };
    if (res.status !== 200 || !json.sid || !json.submit_url) throw new Error(`requestToken failed: ${res.status} ${JSON.stringify(json)}`);
    if (new URL(json.submit_url).pathname !== SUBMIT_PATH) throw new Error(`unexpected submit_url ${json.submit_url}`);
    this.mailsPromised++;
    const deadline = Date.now() + 30_000;
    let mailed: MailedSession | undefined;
    while (!mailed && Date.now() < deadline) {
      mailed = ((await this.sink.request({ take: 1 }, 'taken')) as { taken: MailedSession[] }).taken[0];
      if (!mailed) await new Promise((r) => setTimeout(r, 100));
    }
    if (!mailed || mailed.sid !== json.sid) throw new Error('the requestToken mail did not arrive (or could not be read) within 30 s');
    const submit = await fetch(`${this.myelin.url}${SUBMIT_PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sid: mailed.sid, client_secret: mailed.client_secret, token: mailed.code }),
    });
    if (submit.status !== 200) throw new Error(`submit_url refused the mailed code: ${submit.status} ${await submit.text()}`);
  }

  private requestTokenCase(overallRate?: number, alongside?: Alongside): EmailCase {
    let mailsAtStart = 0;
    let startedAt = 0;
    return {
      name: `${REQUEST_TOKEN_NAME}${overallRate ? ` (offered ${overallRate}/s)` : ''}${this.label}`,
      server: this.myelin,
      method: 'POST',
      path: '/_matrix/client/v3/account/password/email/requestToken',
      headers: { 'content-type': 'application/json' },
      setupRequest: (req) => ({ ...req, body: this.tokenRequest() }),
      overallRate,
      alongside,
      before: async () => {
        // Untimed: start from an empty queue, so each run is measured on its own.
        await this.drain(60_000);
        mailsAtStart = (await sinkStats(this.sink)).received;
        startedAt = Date.now();
      },
      after: async (result) => {
        const seconds = (Date.now() - startedAt) / 1000;
        this.mailsPromised += result['2xx'];
        const received = (await sinkStats(this.sink)).received;
        this.mailRates.push({
          offered: overallRate,
          requestsPerSecond: Math.round(result['2xx'] / seconds),
          mailsPerSecond: Math.round((received - mailsAtStart) / seconds),
          backlogAtEnd: Math.max(0, this.mailsPromised - received),
        });
      },
      note: overallRate
        ? `the same at a fixed offered load of ${overallRate} requests/s: does the mail queue keep up?`
        : `a fresh client_secret per request, ${MAIL_USERS} addresses bound to accounts; each queues a mail (text + HTML) that the in-process outbox worker sends over SMTP to the sink process`,
    };
  }

  /** `alongside`: a light load run beside the flat-out requestToken case. */
  cases(alongside?: Alongside): EmailCase[] {
    return [
      this.requestTokenCase(undefined, alongside),
      this.requestTokenCase(this.mailRate),
      {
        name: `${SUBMIT_NAME}${this.label}`,
        server: this.myelin,
        method: 'POST',
        path: SUBMIT_PATH,
        headers: { 'content-type': 'application/json' },
        setupRequest: (req) => ({ ...req, body: JSON.stringify(this.nextSubmission()) }),
        before: async () => {
          // Untimed: let the outbox deliver what requestToken queued, so there are codes to submit.
          await this.drain(60_000);
          this.pool.push(...((await this.sink.request({ take: 1_000_000 }, 'taken')) as { taken: MailedSession[] }).taken);
          this.freshInRun = 0;
        },
        after: async () => {
          this.submitFresh.push(this.freshInRun);
        },
        note: 'each request submits the code of a session the sink received a mail for; once those run out it repeats codes of sessions it already validated (the idempotent path)',
      },
    ];
  }

  private nextSubmission(): { sid: string; client_secret: string; token: string } {
    let s = this.pool.pop();
    if (s) {
      this.freshInRun++;
      this.used.push(s);
    } else {
      s = this.used[this.repeats++ % this.used.length];
      if (!s) throw new Error('no mailed session to submit a code for');
    }
    return { sid: s.sid, client_secret: s.client_secret, token: s.code };
  }

  /** Waits (at most `timeoutMs`) until every promised mail has reached the sink. */
  async drain(timeoutMs: number): Promise<{ promised: number; received: number; unreadable: number; waitedMs: number }> {
    const start = Date.now();
    let stats = await sinkStats(this.sink);
    while (stats.received < this.mailsPromised && Date.now() - start < timeoutMs) {
      await new Promise((r) => setTimeout(r, 200));
      stats = await sinkStats(this.sink);
    }
    return { promised: this.mailsPromised, received: stats.received, unreadable: stats.unreadable, waitedMs: Date.now() - start };
  }
}

export const SUBMIT_PATH = '/_matrix/client/unstable/password_reset/email/submit_token';
const REQUEST_TOKEN_NAME = 'POST /_matrix/client/v3/account/password/email/requestToken';
const SUBMIT_NAME = 'POST submit_url (the mailed code)';
/** Enough of each email case's name for --only to tell whether the email set-up is needed. */
export const EMAIL_CASE_NAMES = [REQUEST_TOKEN_NAME, `${REQUEST_TOKEN_NAME} (offered`, SUBMIT_NAME];
