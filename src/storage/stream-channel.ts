import type { Kysely } from 'kysely';
import type pg from 'pg';
import { loadPg, pgConnectionOptions, type PostgresArgs } from './db.js';
import { RawHotQuery } from './compiled.js';
import type { Database } from './schema.js';

const CHANNEL = 'myelin_stream';
const NOTIFY = new RawHotQuery('SELECT pg_notify($1, $2)');
/** The second channel on the same LISTEN connection: access tokens revoked (see TokenNotice). */
export const TOKENS_CHANNEL = 'myelin_tokens';
/** Postgres caps a NOTIFY payload at 8000 bytes. */
const MAX_PAYLOAD = 7000;
/** The payload format's version, first on its first line. */
const VERSION = '1';

/** A committed change, as one process tells the others: its stream position, and whose syncs it wakes. */
export interface StreamNotice {
  position: number;
  users: readonly string[];
  rooms: readonly string[];
}

/**
 * The payload: "1 <origin> <position>" on the first line, then one ID a line, told apart by their
 * sigils: "@user:server" or "!room:server". A notice too big for one payload goes in several.
 */
export function encodeNotices(origin: string, notice: StreamNotice, maxBytes = MAX_PAYLOAD): string[] {
  const header = `${VERSION} ${origin} ${notice.position}`;
  const payloads: string[] = [];
  let lines = [header];
  let size = Buffer.byteLength(header);
  for (const id of [...notice.users, ...notice.rooms]) {
    const bytes = Buffer.byteLength(id) + 1;
    if (size + bytes > maxBytes && lines.length > 1) {
      payloads.push(lines.join('\n'));
      lines = [header];
      size = Buffer.byteLength(header);
    }
    lines.push(id);
    size += bytes;
  }
  if (lines.length > 1) payloads.push(lines.join('\n'));
  return payloads;
}

/** The notice in a payload and who sent it, or undefined for a payload in a format this process does not know. */
export function decodeNotice(payload: string): { origin: string; notice: StreamNotice } | undefined {
  const [header, ...ids] = payload.split('\n');
  const match = /^1 (\S+) (\d{1,15})$/.exec(header ?? '');
  if (!match) return undefined;
  return {
    origin: match[1]!,
    notice: { position: Number(match[2]), users: ids.filter((id) => id.startsWith('@')), rooms: ids.filter((id) => id.startsWith('!')) },
  };
}

/**
 * On TOKENS_CHANNEL: a user's access tokens changed (revoked, rotated, device deleted, account
 * deactivated), so every process must forget what it cached of them. `seq` numbers the notices of
 * one origin, which waits to hear its own notice back and every other process's `ack` of it.
 * Without a user or an ack it is only a heartbeat.
 */
export interface TokenNotice {
  origin: string;
  seq: number;
  userId?: string;
  /** This process has forgotten the user of that origin's notice. */
  ack?: { origin: string; seq: number };
  /** This process is stopping: it answers from memory no more and acknowledges nothing from now on. */
  bye?: true;
}

/** "1 <origin> <seq>" on the first line (the format's version first), then the user ID, "ack <origin> <seq>" or "bye", if any. */
export function encodeTokenNotice(notice: TokenNotice): string {
  const header = `${VERSION} ${notice.origin} ${notice.seq}`;
  if (notice.ack !== undefined) return `${header}\nack ${notice.ack.origin} ${notice.ack.seq}`;
  if (notice.bye) return `${header}\nbye`;
  return notice.userId === undefined ? header : `${header}\n${notice.userId}`;
}

/** The notice in a payload, or undefined for a format this process does not know. */
export function decodeTokenNotice(payload: string): TokenNotice | undefined {
  const [header, second, ...rest] = payload.split('\n');
  const match = /^1 (\S+) (\d{1,15})$/.exec(header ?? '');
  if (!match || rest.length > 0) return undefined;
  const notice: TokenNotice = { origin: match[1]!, seq: Number(match[2]) };
  if (second === undefined) return notice;
  if (second.startsWith('@')) return { ...notice, userId: second };
  if (second === 'bye') return { ...notice, bye: true };
  const ack = /^ack (\S+) (\d{1,15})$/.exec(second);
  return ack ? { ...notice, ack: { origin: ack[1]!, seq: Number(ack[2]) } } : undefined;
}

/** Who hears TOKENS_CHANNEL: the access-token cache (services/token-cache.ts). */
export interface TokenNoticeListener {
  /** Every notice, this process's own included; undefined for a payload it cannot read. */
  onTokenNotice(notice: TokenNotice | undefined): void;
  /** True once both channels are listened to; false as soon as the connection is known lost, and on close. */
  onListening(listening: boolean): void;
}

/**
 * Carries "the stream moved for these users and rooms" between processes sharing one Postgres
 * database: NOTIFY after a commit, and one dedicated connection per process that LISTENs. A
 * process ignores what it sent itself.
 */
export class StreamChannel {
  private client: pg.Client | undefined;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;
  /** The NOTIFY on its way, if any. */
  private sending: Promise<void> | undefined;
  /** Notices waiting for it, merged into one. */
  private queued: { position: number; users: Set<string>; rooms: Set<string>; sent: Promise<void> } | undefined;

  constructor(
    private readonly kysely: Kysely<Database>,
    private readonly args: PostgresArgs,
    private readonly origin: string,
    private readonly onNotice: (notice: StreamNotice) => void,
    /** Called after a reconnect, when notifications may have been missed, and for a payload it cannot read. */
    private readonly onGap: () => void,
    /** Hears revoked access tokens on the same connection, if given. */
    private readonly tokens?: TokenNoticeListener,
  ) {}

  async start(): Promise<void> {
    if (this.closed) return;
    const { Client } = await loadPg();
    if (this.closed) return;
    const client = new Client(pgConnectionOptions(this.args));
    const lost = () => {
      if (this.client !== client) return;
      this.client = undefined;
      this.tokens?.onListening(false);
      client.end().catch(() => undefined);
      this.scheduleRetry();
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (msg) => {
      if (!msg.payload) return;
      if (msg.channel === TOKENS_CHANNEL) {
        this.tokens?.onTokenNotice(decodeTokenNotice(msg.payload));
        return;
      }
      const decoded = decodeNotice(msg.payload);
      // From a process that speaks another format (during an upgrade): whose stream moved is unknown.
      if (!decoded) this.onGap();
      else if (decoded.origin !== this.origin) this.onNotice(decoded.notice);
    });
    this.client = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      if (this.tokens) await client.query(`LISTEN ${TOKENS_CHANNEL}`);
    } catch {
      lost();
      return;
    }
    if (this.closed) await this.close();
    else if (this.client === client) this.tokens?.onListening(true);
  }

  private scheduleRetry(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.start().then(() => {
        if (this.client) this.onGap();
      });
    }, 1000);
  }

  /**
   * Tells the other processes that the stream moved for these users and rooms. While one NOTIFY is
   * on its way, the notices that follow wait and then go as one (the highest position, every user
   * and room named): under a flood of sends that is one round trip per batch rather than per send,
   * and a listener wakes the same syncs either way.
   */
  publish(notice: StreamNotice): Promise<void> {
    if (!this.queued) {
      const queued = { position: notice.position, users: new Set(notice.users), rooms: new Set(notice.rooms), sent: undefined as unknown as Promise<void> };
      queued.sent = (this.sending ?? Promise.resolve()).then(() => {
        if (this.queued === queued) this.queued = undefined;
        return this.send({ position: queued.position, users: [...queued.users], rooms: [...queued.rooms] });
      });
      this.queued = queued;
      const sending = queued.sent.catch(() => undefined);
      this.sending = sending;
      void sending.then(() => {
        if (this.sending === sending) this.sending = undefined;
      });
      return queued.sent;
    }
    const queued = this.queued;
    if (notice.position > queued.position) queued.position = notice.position;
    for (const user of notice.users) queued.users.add(user);
    for (const room of notice.rooms) queued.rooms.add(room);
    return queued.sent;
  }

  private async send(notice: StreamNotice): Promise<void> {
    for (const payload of encodeNotices(this.origin, notice)) await NOTIFY.execute(this.kysely, [CHANNEL, payload]);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.tokens?.onListening(false);
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    const client = this.client;
    this.client = undefined;
    if (client) await client.end().catch(() => undefined);
  }
}
