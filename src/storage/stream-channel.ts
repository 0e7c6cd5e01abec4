import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { pgConnectionOptions, type PostgresArgs } from './db.js';
import type { Database } from './schema.js';

const CHANNEL = 'myelin_stream';
/** Postgres caps a NOTIFY payload at 8000 bytes. */
const MAX_PAYLOAD = 7000;

/**
 * Carries "this user's stream moved" between processes sharing one Postgres database: NOTIFY after
 * a commit, and one dedicated connection per process that LISTENs. Payloads are
 * "<origin>\n<user>\n<user>...", so a process can ignore what it sent itself.
 */
export class StreamChannel {
  private client: pg.Client | undefined;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly kysely: Kysely<Database>,
    private readonly args: PostgresArgs,
    private readonly origin: string,
    private readonly onUsers: (userIds: string[]) => void,
    /** Called after a reconnect: notifications may have been missed while the connection was down. */
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
      const [origin, ...users] = msg.payload.split('\n');
      if (origin !== this.origin && users.length > 0) this.onUsers(users);
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

  /** Tells the other processes that these users' streams moved. */
  async publish(userIds: readonly string[]): Promise<void> {
    let batch: string[] = [];
    let size = this.origin.length;
    const flush = async () => {
      if (batch.length === 0) return;
      const payload = [this.origin, ...batch].join('\n');
      batch = [];
      size = this.origin.length;
      await sql`SELECT pg_notify(${CHANNEL}, ${payload})`.execute(this.kysely);
    };
    for (const user of userIds) {
      if (size + user.length + 1 > MAX_PAYLOAD) await flush();
      batch.push(user);
      size += user.length + 1;
    }
    await flush();
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
