import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { freePort } from './server.js';

/** One mail as the SMTP sink received it. */
export interface ReceivedMail {
  /** Envelope sender and recipients (what the client said in MAIL FROM / RCPT TO). */
  envelopeFrom: string;
  envelopeTo: string[];
  /** The raw message as sent, headers and body. */
  raw: string;
  /** mailparser's view of it. */
  parsed: ParsedMail;
  subject: string;
  /** The text/plain part ('' when absent). */
  text: string;
  /** The text/html part ('' when absent). */
  html: string;
  /** Lower-cased header name -> raw header value (the first, unfolded). */
  header(name: string): string | undefined;
}

export interface SmtpSinkOptions {
  /** Listen on this port (default: a free one, reserved now so the config can name it before start). */
  port?: number;
  /** Require SMTP AUTH (PLAIN/LOGIN) with these credentials. */
  auth?: { user: string; pass: string };
}

/**
 * A real SMTP server on 127.0.0.1 that keeps every mail it receives. Create it first (the port is
 * fixed at once), then `start()` it now or later, `refuse()` mail for a while, `stop()` it at the end.
 *
 *   const smtp = await SmtpSink.create();
 *   await smtp.start();
 *   ... config { email: { smtp_host: '127.0.0.1', smtp_port: smtp.port, ... } }
 *   const mail = await smtp.waitFor((m) => m.envelopeTo.includes('alice@example.org'));
 */
export class SmtpSink {
  readonly messages: ReceivedMail[] = [];
  private server: SMTPServer | undefined;
  private refusing = false;
  private rejecting: (address: string) => boolean = () => false;
  private waiters: { predicate: (m: ReceivedMail) => boolean; resolve: (m: ReceivedMail) => void }[] = [];

  /** Logins the server saw: user name and whether the password was right. */
  readonly logins: { user: string; ok: boolean }[] = [];

  private constructor(
    readonly port: number,
    private readonly auth?: { user: string; pass: string },
  ) {}

  static async create(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
    return new SmtpSink(options.port ?? (await freePort()), options.auth);
  }

  /** Creates and starts a sink. */
  static async started(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
    const sink = await SmtpSink.create(options);
    await sink.start();
    return sink;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  /** Config keys for Myelin's `email:` section that point at this sink. */
  emailConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { smtp_host: '127.0.0.1', smtp_port: this.port, notif_from: '%(app)s <noreply@test.local>', enable_tls: false, ...extra };
  }

  async start(): Promise<void> {
    if (this.server) return;
    const auth = this.auth;
    const server = new SMTPServer({
      authOptional: auth === undefined,
      allowInsecureAuth: true,
      disabledCommands: auth ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
      logger: false,
      onAuth: (login, _session, callback) => {
        const ok = auth !== undefined && login.username === auth.user && login.password === auth.pass;
        this.logins.push({ user: login.username ?? '', ok });
        if (ok) callback(null, { user: login.username });
        else callback(Object.assign(new Error('invalid credentials'), { responseCode: 535 }));
      },
      onConnect: (_session, callback) => {
        if (this.refusing) callback(Object.assign(new Error('refusing mail for now'), { responseCode: 421 }));
        else callback();
      },
      onMailFrom: (_address, _session, callback) => {
        if (this.refusing) callback(Object.assign(new Error('refusing mail for now'), { responseCode: 451 }));
        else callback();
      },
      onRcptTo: (address, _session, callback) => {
        if (this.rejecting(address.address)) callback(Object.assign(new Error('no such mailbox'), { responseCode: 550 }));
        else callback();
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('error', callback);
        stream.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          const envelopeFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
          const envelopeTo = session.envelope.rcptTo.map((r) => r.address);
          simpleParser(raw)
            .then((parsed) => {
              this.receive(raw, parsed, envelopeFrom, envelopeTo);
              callback();
            })
            .catch((err: Error) => callback(err));
        });
      },
    });
    server.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.server.once('error', onError);
      server.listen(this.port, '127.0.0.1', () => {
        server.server.off('error', onError);
        resolve();
      });
    });
    this.server = server;
  }

  /**
   * While on, every new connection is answered `421` and every mail on a connection already open
   * `451` (temporary failures), as a struggling server does: a client's pooled connection gets no
   * way past it.
   */
  refuse(on = true): void {
    this.refusing = on;
  }

  /** Recipients for which this is true are refused for good (`550 no such mailbox`). */
  rejectRecipients(predicate: (address: string) => boolean): void {
    this.rejecting = predicate;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Resolves with the first mail (already received or yet to come) that matches; rejects after `timeoutMs`. */
  waitFor(predicate: (m: ReceivedMail) => boolean = () => true, timeoutMs = 10_000): Promise<ReceivedMail> {
    const found = this.messages.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter = {
        predicate,
        resolve: (m: ReceivedMail) => {
          clearTimeout(timer);
          resolve(m);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no matching mail within ${timeoutMs} ms (${this.messages.length} received)`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Waits until at least `count` mails have arrived. */
  async waitForCount(count: number, timeoutMs = 10_000): Promise<ReceivedMail[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} mails within ${timeoutMs} ms, got ${this.messages.length}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.messages;
  }

  /** Mails sent to this address (envelope recipient). */
  to(address: string): ReceivedMail[] {
    return this.messages.filter((m) => m.envelopeTo.includes(address));
  }

  clear(): void {
    this.messages.length = 0;
  }

  private receive(raw: string, parsed: ParsedMail, envelopeFrom: string, envelopeTo: string[]): void {
    const headerEnd = raw.search(/\r?\n\r?\n/);
    const headerBlock = (headerEnd === -1 ? raw : raw.slice(0, headerEnd)).replace(/\r?\n[ \t]+/g, ' ');
    const headers = new Map<string, string>();
    for (const line of headerBlock.split(/\r?\n/)) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
    }
    const mail: ReceivedMail = {
      envelopeFrom,
      envelopeTo,
      raw,
      parsed,
      subject: parsed.subject ?? '',
      text: parsed.text ?? '',
      html: typeof parsed.html === 'string' ? parsed.html : '',
      header: (name) => headers.get(name.toLowerCase()),
    };
    this.messages.push(mail);
    const ready = this.waiters.filter((w) => w.predicate(mail));
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve(mail);
  }
}
