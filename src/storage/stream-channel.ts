import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { pgConnectionOptions, type PostgresArgs } from './db.js';
import type { Database } from './schema.js';

const CHANNEL = 'myelin_stream';
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
 * Carries "the stream moved for these users and rooms" between processes sharing one Postgres
 * database: NOTIFY after a commit, and one dedicated connection per process that LISTENs. A
 * process ignores what it sent itself.
 */
export class StreamChannel {
  private client: pg.Client | undefined;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly kysely: Kysely<Database>,
    private readonly args: PostgresArgs,
    private readonly origin: string,
    private readonly onNotice: (notice: StreamNotice) => void,
    /** Called after a reconnect, when notifications may have been missed, and for a payload it cannot read. */
    private readonly onGap: () => void,
  ) {}

  async start(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client(pgConnectionOptions(this.args));
    const lost = () => {
      if (this.client !== client) return;
      this.client = undefined;
      client.end().catch(() => undefined);
      this.scheduleRetry();
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (msg) => {
      if (!msg.payload) return;
      const decoded = decodeNotice(msg.payload);
      // From a process that speaks another format (during an upgrade): whose stream moved is unknown.
      if (!decoded) this.onGap();
      else if (decoded.origin !== this.origin) this.onNotice(decoded.notice);
    });
    this.client = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch {
      lost();
      return;
    }
    if (this.closed) await this.close();
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

  /** Tells the other processes that the stream moved for these users and rooms. */
  async publish(notice: StreamNotice): Promise<void> {
    for (const payload of encodeNotices(this.origin, notice)) await sql`SELECT pg_notify(${CHANNEL}, ${payload})`.execute(this.kysely);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    const client = this.client;
    this.client = undefined;
    if (client) await client.end().catch(() => undefined);
  }
}
