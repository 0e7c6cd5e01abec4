import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** A message the fake gateway accepted. */
export interface ReceivedSms {
  sid: string;
  to: string;
  from?: string;
  messagingServiceSid?: string;
  body: string;
  /** Every form field exactly as received. */
  fields: Record<string, string>;
}

/** Records every delivered message and lets a test wait for the next ones. */
class Inbox<T> {
  readonly items: T[] = [];
  private waiters: { count: number; resolve: () => void }[] = [];

  push(item: T): void {
    this.items.push(item);
    this.waiters = this.waiters.filter((w) => {
      if (this.items.length < w.count) return true;
      w.resolve();
      return false;
    });
  }

  /** Resolves once `count` items have arrived in total; rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs = 10_000): Promise<T[]> {
    if (this.items.length >= count) return Promise.resolve(this.items.slice());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`expected ${count} messages, got ${this.items.length} after ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve(this.items.slice());
        },
      });
    });
  }
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

function secretEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** An HTTP server that can be stopped and restarted on the same port, to simulate an outage. */
abstract class TestHttpServer {
  port = 0;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** Answers this status instead of handling requests while > 0 (decremented per request); -1 = until cleared. */
  private failuresLeft = 0;
  private failureStatus = 500;
  /** Requests received, including refused and failed ones. */
  hits = 0;
  /** The body of each request received, in order, including refused and failed ones. */
  readonly bodies: string[] = [];

  protected abstract handle(req: IncomingMessage, res: ServerResponse, raw: string): void;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Makes the next `count` requests (or all until `recover`, when count is omitted) answer `status`. */
  fail(status = 500, count = -1): void {
    this.failureStatus = status;
    this.failuresLeft = count;
  }

  recover(): void {
    this.failuresLeft = 0;
  }

  async start(): Promise<this> {
    const server = createServer((req, res) => {
      readBody(req)
        .then((raw) => {
          this.hits++;
          this.bodies.push(raw);
          if (this.failuresLeft !== 0) {
            if (this.failuresLeft > 0) this.failuresLeft--;
            json(res, this.failureStatus, { code: 20500, message: 'Internal Server Error', status: this.failureStatus });
            return;
          }
          this.handle(req, res, raw);
        })
        .catch(() => res.destroy());
    });
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  /** Stops listening and drops open connections: requests now fail with ECONNREFUSED. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

const E164 = /^\+[1-9]\d{1,14}$/;

/**
 * A fake Twilio Programmable Messaging API. It checks what the real one checks for
 * `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`: HTTP Basic auth with the account SID and
 * auth token, a form-encoded body, `To` in E.164, `Body`, and `From` or `MessagingServiceSid`; and
 * answers 201 with a message resource, or Twilio's error JSON.
 */
export class FakeTwilio extends TestHttpServer {
  readonly inbox = new Inbox<ReceivedSms>();

  constructor(
    readonly accountSid = `AC${randomBytes(16).toString('hex')}`,
    readonly authToken = randomBytes(16).toString('hex'),
  ) {
    super();
  }

  get messages(): ReceivedSms[] {
    return this.inbox.items;
  }

  waitFor(count: number, timeoutMs?: number): Promise<ReceivedSms[]> {
    return this.inbox.waitFor(count, timeoutMs);
  }

  /** The config to point Myelin's twilio provider at this server. */
  smsConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      provider: 'twilio',
      twilio: { account_sid: this.accountSid, auth_token: this.authToken, from: '+15005550006', api_base_url: this.url, request_timeout: '5s' },
      ...extra,
    };
  }

  private error(res: ServerResponse, status: number, code: number, message: string): void {
    json(res, status, { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status });
  }

  protected handle(req: IncomingMessage, res: ServerResponse, raw: string): void {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const match = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/.exec(path);
    if (!match) return this.error(res, 404, 20404, 'The requested resource was not found');
    if (req.method !== 'POST') return this.error(res, 405, 20004, 'Method not allowed');

    const auth = /^Basic ([A-Za-z0-9+/=]+)$/.exec(req.headers.authorization ?? '');
    const [user, ...rest] = auth ? Buffer.from(auth[1]!, 'base64').toString('utf8').split(':') : [];
    if (!auth || !secretEqual(user ?? '', this.accountSid) || !secretEqual(rest.join(':'), this.authToken)) {
      res.setHeader('www-authenticate', 'Basic realm="Twilio API"');
      return this.error(res, 401, 20003, 'Authenticate');
    }
    if (decodeURIComponent(match[1]!) !== this.accountSid) return this.error(res, 404, 20404, 'The requested resource was not found');
    if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
      return this.error(res, 400, 21601, 'Request body must be application/x-www-form-urlencoded');
    }

    const form = new URLSearchParams(raw);
    const fields: Record<string, string> = {};
    for (const [key, value] of form) {
      if (key in fields) return this.error(res, 400, 21601, `Parameter ${key} given more than once`);
      fields[key] = value;
    }
    const to = fields.To;
    if (!to) return this.error(res, 400, 21604, "A 'To' phone number is required.");
    if (!E164.test(to)) return this.error(res, 400, 21211, `The 'To' number ${to} is not a valid phone number.`);
    if (!fields.From && !fields.MessagingServiceSid) return this.error(res, 400, 21603, "A 'From' phone number is required.");
    if (fields.Body === undefined || fields.Body === '') return this.error(res, 400, 21602, 'Message body is required.');
    if (fields.Body.length > 1600) return this.error(res, 400, 21617, 'The concatenated message body exceeds the 1600 character limit.');

    const sid = `SM${randomBytes(16).toString('hex')}`;
    this.inbox.push({ sid, to, from: fields.From, messagingServiceSid: fields.MessagingServiceSid, body: fields.Body, fields });
    const now = new Date().toUTCString();
    json(res, 201, {
      account_sid: this.accountSid,
      api_version: '2010-04-01',
      body: fields.Body,
      date_created: now,
      date_sent: null,
      date_updated: now,
      direction: 'outbound-api',
      error_code: null,
      error_message: null,
      from: fields.From ?? null,
      messaging_service_sid: fields.MessagingServiceSid ?? null,
      num_media: '0',
      num_segments: String(Math.max(1, Math.ceil(fields.Body.length / 153))),
      price: null,
      price_unit: 'USD',
      sid,
      status: fields.MessagingServiceSid ? 'accepted' : 'queued',
      to,
      uri: `/2010-04-01/Accounts/${this.accountSid}/Messages/${sid}.json`,
    });
  }
}

/** A request the webhook receiver got, with whether its signature was right. */
export interface ReceivedWebhook {
  headers: IncomingMessage['headers'];
  raw: string;
  body: Record<string, unknown>;
  signatureValid: boolean;
}

/**
 * An SMS gateway receiving Myelin's webhook provider: it checks the HMAC-SHA256 signature over the
 * raw body with its own copy of the secret, answers 401 when it is wrong or missing, 200 otherwise.
 */
export class WebhookReceiver extends TestHttpServer {
  readonly inbox = new Inbox<ReceivedWebhook>();
  /** Every request, including the refused ones. */
  readonly all: ReceivedWebhook[] = [];

  constructor(
    readonly secret: string | undefined,
    readonly signatureHeader = 'x-myelin-signature',
  ) {
    super();
  }

  waitFor(count: number, timeoutMs?: number): Promise<ReceivedWebhook[]> {
    return this.inbox.waitFor(count, timeoutMs);
  }

  protected handle(req: IncomingMessage, res: ServerResponse, raw: string): void {
    if (req.method !== 'POST' || new URL(req.url ?? '/', 'http://x').pathname !== '/sms') return json(res, 404, { error: 'not found' });
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      return json(res, 400, { error: 'not JSON' });
    }
    const given = req.headers[this.signatureHeader.toLowerCase()];
    const signatureValid = this.secret === undefined ? given === undefined : typeof given === 'string' && secretEqual(given, `sha256=${createHmac('sha256', this.secret).update(Buffer.from(raw, 'utf8')).digest('hex')}`);
    const received = { headers: req.headers, raw, body, signatureValid };
    this.all.push(received);
    if (!signatureValid) return json(res, 401, { error: 'bad signature' });
    this.inbox.push(received);
    json(res, 200, { ok: true });
  }
}
