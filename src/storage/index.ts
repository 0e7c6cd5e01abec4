import type { Kysely } from 'kysely';
import { ClientStateRepos } from './client-state.js';
import type { Db } from './db.js';
import { DevicesRepo } from './devices.js';
import { OutboxRepo } from './outbox.js';
import { RateLimitsRepo } from './ratelimits.js';
import { ThreepidSessionsRepo } from './threepid-sessions.js';
import type { Database } from './schema.js';
import { UserThreepidsRepo } from './threepids.js';
import { TokensRepo } from './tokens.js';
import { UiaSessionsRepo } from './uia.js';
import { UsersRepo } from './users.js';

/** Every repository over one connection (or one transaction). */
export class Store {
  readonly users: UsersRepo;
  readonly devices: DevicesRepo;
  readonly tokens: TokensRepo;
  readonly uia: UiaSessionsRepo;
  readonly threepids: UserThreepidsRepo;
  readonly rateLimits: RateLimitsRepo;
  readonly outbox: OutboxRepo;
  readonly threepidSessions: ThreepidSessionsRepo;
  readonly clientState: ClientStateRepos;

  constructor(
    readonly db: Db,
    kysely: Kysely<Database> = db.kysely,
    /** Set on a transaction's Store: what to run once it has committed. */
    private readonly committed?: (() => void)[],
  ) {
    this.users = new UsersRepo(kysely);
    this.devices = new DevicesRepo(kysely);
    this.tokens = new TokensRepo(kysely);
    this.uia = new UiaSessionsRepo(kysely);
    this.threepids = new UserThreepidsRepo(kysely);
    this.rateLimits = new RateLimitsRepo(kysely, db.engine);
    this.outbox = new OutboxRepo(kysely, db.engine);
    this.threepidSessions = new ThreepidSessionsRepo(kysely);
    this.clientState = new ClientStateRepos(kysely);
  }

  /** Runs `fn` in one transaction, with a Store whose repositories all use it. */
  async transaction<T>(fn: (store: Store) => Promise<T>): Promise<T> {
    const committed: (() => void)[] = [];
    const result = await this.db.kysely.transaction().execute((trx) => fn(new Store(this.db, trx, committed)));
    for (const callback of committed) callback();
    return result;
  }

  /** Runs `callback` once what this Store wrote is committed: at once outside a transaction, else after the commit (never on rollback). */
  afterCommit(callback: () => void): void {
    if (this.committed) this.committed.push(callback);
    else callback();
  }
}
