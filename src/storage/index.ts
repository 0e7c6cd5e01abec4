import { CompiledQuery, type ControlledTransaction, type Kysely } from 'kysely';
import { deferredStatementsText, type DeferredStatement } from './db.js';
import { inlineParameters } from './simple-query.js';
import { AccountDataRepo } from './account-data.js';
import { E2eKeysRepo } from './e2e-keys.js';
import { FiltersRepo } from './filters.js';
import { KeyBackupRepo } from './key-backup.js';
import { PresenceRepo } from './presence.js';
import { PushRulesRepo } from './push-rules.js';
import { PushersRepo } from './pushers.js';
import { PushRepo } from './push.js';
import { EmailNotifsRepo } from './email-notifs.js';
import { StreamsRepo } from './streams.js';
import { ToDeviceRepo } from './to-device.js';
import type { Db } from './db.js';
import { DevicesRepo } from './devices.js';
import { OutboxRepo } from './outbox.js';
import { RateLimitsRepo } from './ratelimits.js';
import { ValidationSessionsRepo } from './validation-sessions.js';
import type { Database } from './schema.js';
import { UserThreepidsRepo } from './threepids.js';
import { ThreepidIdServersRepo } from './threepid-id-servers.js';
import { TokensRepo } from './tokens.js';
import { UiaSessionsRepo } from './uia.js';
import { UsersRepo } from './users.js';
import { EventsRepo } from './events.js';
import { RoomsRepo } from './rooms.js';
import { RelationsRepo } from './relations.js';
import { AdminRoomsRepo } from './admin-rooms.js';
import { AdminUsersRepo } from './admin-users.js';
import { RegistrationTokensRepo } from './registration-tokens.js';
import { ReceiptsRepo } from './receipts.js';
import { TypingRepo } from './typing.js';
import { MediaRepo } from './media.js';
import { DirectoryRepo } from './directory.js';
import { SearchRepo } from './search.js';
import { ReportsRepo } from './reports.js';
import { ProfilePropagationsRepo } from './profile-propagations.js';
import { RoomUpgradesRepo } from './room-upgrades.js';

/**
 * One unit of work: what one transaction (or, on the root Store, the database outside any
 * transaction) holds while it runs. Savepoints nest inside it; callbacks wait for the outer commit.
 */
interface Work {
  trx: ControlledTransaction<Database>;
  /** What to run once the outer transaction has committed, in the order registered. */
  committed: (() => void)[];
  /** What to run as soon as the outer COMMIT statement has returned (see onCommitReturned). */
  commitReturned: (() => void)[];
  /** Writes to send with the COMMIT (deferToCommit). */
  deferred: DeferredStatement[];
  /** The depth of the innermost transaction (savepoint) still running: 0 for the outer one. */
  depth: number;
  savepoints: number;
}

/**
 * Every repository over one connection (or one transaction). `transaction(fn)` runs fn with a Store
 * bound to a transaction; on a Store that is already bound it joins that transaction as a SAVEPOINT,
 * so a service can call another service (`devices.within(tx)`) inside its own unit of work.
 *
 * Explicit rather than ambient: an AsyncLocalStorage would spare passing the bound Store, but on
 * Node 20 it enables a promise hook that costs every await in the process (measured about 50 to
 * 100 ns each), the whoami path included, and work started inside a transaction that outlives it
 * would keep using it.
 */
export class Store {
  readonly users: UsersRepo;
  readonly devices: DevicesRepo;
  readonly tokens: TokensRepo;
  readonly uia: UiaSessionsRepo;
  readonly threepids: UserThreepidsRepo;
  /** Which identity server each address was bound to. */
  readonly threepidIdServers: ThreepidIdServersRepo;
  readonly rateLimits: RateLimitsRepo;
  readonly outbox: OutboxRepo;
  readonly validationSessions: ValidationSessionsRepo;
  readonly streams: StreamsRepo;
  readonly accountData: AccountDataRepo;
  readonly toDevice: ToDeviceRepo;
  readonly keys: E2eKeysRepo;
  readonly filters: FiltersRepo;
  readonly pushRules: PushRulesRepo;
  readonly pushers: PushersRepo;
  /** Push evaluation's progress, notification counts and notifications. */
  readonly push: PushRepo;
  readonly emailNotifs: EmailNotifsRepo;
  readonly keyBackup: KeyBackupRepo;
  readonly presence: PresenceRepo;
  readonly rooms: RoomsRepo;
  readonly events: EventsRepo;
  readonly relations: RelationsRepo;
  readonly adminUsers: AdminUsersRepo;
  readonly adminRooms: AdminRoomsRepo;
  readonly registrationTokens: RegistrationTokensRepo;
  readonly receipts: ReceiptsRepo;
  readonly typing: TypingRepo;
  /** The content repository's metadata. */
  readonly media: MediaRepo;
  /** The published room directory and the user directory. */
  readonly directory: DirectoryRepo;
  /** The full-text index of room events. */
  readonly search: SearchRepo;
  /** Reported events and rooms. */
  readonly reports: ReportsRepo;
  /** Profile changes still to be written into the users' rooms. */
  readonly profilePropagations: ProfilePropagationsRepo;
  /** Room upgrades under way or lately done, for every process on the database. */
  readonly roomUpgrades: RoomUpgradesRepo;

  constructor(
    readonly db: Db,
    kysely: Kysely<Database> = db.kysely,
    /** Set on a transaction's Store. */
    private readonly work?: Work,
    /** Which level of `work` this Store belongs to: 0 the outer transaction, n its n-th nested savepoint. */
    private readonly depth = 0,
  ) {
    this.users = new UsersRepo(kysely);
    this.devices = new DevicesRepo(kysely);
    this.tokens = new TokensRepo(kysely);
    this.uia = new UiaSessionsRepo(kysely);
    this.threepids = new UserThreepidsRepo(kysely);
    this.threepidIdServers = new ThreepidIdServersRepo(kysely);
    this.rateLimits = new RateLimitsRepo(kysely, db.engine);
    this.outbox = new OutboxRepo(kysely, db.engine);
    this.validationSessions = new ValidationSessionsRepo(kysely);
    this.streams = new StreamsRepo(kysely);
    this.accountData = new AccountDataRepo(kysely);
    this.toDevice = new ToDeviceRepo(kysely);
    this.keys = new E2eKeysRepo(kysely);
    this.filters = new FiltersRepo(kysely);
    this.pushRules = new PushRulesRepo(kysely);
    this.pushers = new PushersRepo(kysely);
    this.push = new PushRepo(kysely, db.engine);
    this.emailNotifs = new EmailNotifsRepo(kysely);
    this.keyBackup = new KeyBackupRepo(kysely);
    this.presence = new PresenceRepo(kysely);
    this.rooms = new RoomsRepo(kysely, db.engine);
    this.events = new EventsRepo(kysely, db);
    this.relations = new RelationsRepo(kysely, db.engine);
    this.adminUsers = new AdminUsersRepo(kysely);
    this.adminRooms = new AdminRoomsRepo(kysely);
    this.registrationTokens = new RegistrationTokensRepo(kysely);
    this.receipts = new ReceiptsRepo(kysely, db.engine, db.pool);
    this.typing = new TypingRepo(kysely, db.engine);
    this.media = new MediaRepo(kysely);
    this.directory = new DirectoryRepo(kysely);
    this.search = new SearchRepo(kysely, db.engine);
    this.reports = new ReportsRepo(kysely, db.engine);
    this.profilePropagations = new ProfilePropagationsRepo(kysely);
    this.roomUpgrades = new RoomUpgradesRepo(kysely);
  }

  /** Whether this Store works inside a transaction. */
  get inTransaction(): boolean {
    return this.work !== undefined;
  }

  /**
   * Runs `fn` in one transaction, with a Store whose repositories all use it. On a Store already in a
   * transaction, `fn` runs in that same transaction (same connection, sees its uncommitted writes)
   * inside a SAVEPOINT: if `fn` throws, only its own writes and afterCommit callbacks are undone, and
   * the caller decides whether the outer transaction goes on. Nothing commits before the outer one.
   */
  async transaction<T>(fn: (store: Store) => Promise<T>): Promise<T> {
    if (this.work) return this.nested(this.work, fn);
    const start = () => this.db.kysely.startTransaction().execute();
    const trx = await (this.db.sqlite ? this.db.sqlite.starting(start) : start());
    const work: Work = { trx, committed: [], commitReturned: [], deferred: [], depth: 0, savepoints: 0 };
    let result: T;
    try {
      result = await fn(new Store(this.db, trx, work));
      // Hands them to the connection, which sends them with the COMMIT below (see db.ts).
      if (work.deferred.length > 0) await trx.executeQuery(CompiledQuery.raw(deferredStatementsText(work.deferred.splice(0)), []));
      // Taken while this transaction still holds the connection: its group's commit on SQLite.
      const durable = this.db.sqlite?.durable();
      await trx.commit().execute();
      for (const callback of work.commitReturned.splice(0)) callback();
      await durable;
    } catch (err) {
      for (const statement of work.deferred.splice(0)) statement.reject(new Error('the transaction rolled back'));
      if (!trx.isCommitted && !trx.isRolledBack) await trx.rollback().execute();
      throw err;
    }
    for (const callback of work.committed) callback();
    return result;
  }

  private async nested<T>(work: Work, fn: (store: Store) => Promise<T>): Promise<T> {
    // Savepoints are a stack on one connection: two nested transactions side by side would undo
    // each other's writes on a rollback, so that is refused rather than allowed to corrupt.
    if (work.depth !== this.depth) throw new Error('a nested transaction can only start from the innermost one still running, one at a time');
    const name = `sp${++work.savepoints}`;
    const mark = work.committed.length;
    work.depth = this.depth + 1;
    try {
      // Savepoint names are known only at run time; Kysely's types track them statically.
      const trx = (await work.trx.savepoint(name).execute()) as unknown as ControlledTransaction<Database, [string]>;
      try {
        const result = await fn(new Store(this.db, work.trx, work, this.depth + 1));
        await trx.releaseSavepoint(name).execute();
        return result;
      } catch (err) {
        work.committed.length = mark;
        await trx.rollbackToSavepoint(name).execute();
        throw err;
      }
    } finally {
      work.depth = this.depth;
    }
  }

  /**
   * Whether deferToCommit may be used here: on PostgreSQL, in the outer transaction (not in a
   * savepoint, whose rollback could not take back a statement sent at the commit).
   */
  get canDeferToCommit(): boolean {
    return this.db.engine === 'postgres' && this.work !== undefined && this.depth === 0 && this.work.depth === 0;
  }

  /**
   * Sends a write with the transaction's COMMIT, in the same round trip, rather than now; its rows
   * once committed. Only for a write that nothing later in the transaction reads or depends on, and
   * only where canDeferToCommit. A deferred write that fails fails the commit, so the whole
   * transaction (the caller sees the error from `transaction`, the statement's promise rejects too).
   */
  deferToCommit<R>(compiled: { sql: string; parameters: readonly unknown[] }): { rows: Promise<R[]> } {
    if (!this.canDeferToCommit) throw new Error('deferToCommit outside an outer PostgreSQL transaction');
    const sql = inlineParameters(compiled);
    const rows = new Promise<R[]>((resolve, reject) => this.work!.deferred.push({ sql, resolve: resolve as (rows: unknown[]) => void, reject }));
    // Whoever ignores the rows learns of a failure from the commit.
    rows.catch(() => undefined);
    return { rows };
  }

  /**
   * Runs `callback` in the outer transaction as soon as its COMMIT statement has returned, before
   * `transaction` returns. On PostgreSQL that is the commit; on SQLite the transaction has left the
   * connection, whose group commit may still be to come (and, should it fail, `transaction` throws
   * afterwards): for what the next transaction on the connection must find, not for what others read.
   */
  onCommitReturned(callback: () => void): void {
    if (!this.work || this.depth !== 0) throw new Error('onCommitReturned is for the outer transaction');
    this.work.commitReturned.push(callback);
  }

  /** Runs `callback` once what this Store wrote is committed: at once outside a transaction, else after the outer commit (never on rollback). */
  afterCommit(callback: () => void): void {
    if (this.work) this.work.committed.push(callback);
    else callback();
  }
}
