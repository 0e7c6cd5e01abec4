import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteAdapter, SqliteDialect, type DatabaseConnection, type DialectAdapter, type Driver, type MigrationProvider, type SqliteDatabase } from 'kysely';
import type pg from 'pg';
import type { Config } from '../config/index.js';
import { WalCheckpointer, type CheckpointOptions } from './checkpoint.js';
import { preparedStatementNames } from './compiled.js';
import { whenNotBusy, type LockWaits } from './sqlite-busy.js';
import { SqliteConnectionQueue } from './sqlite-connection-queue.js';
import { SqliteGroupCommit } from './sqlite-group-commit.js';
import { migrations } from './migrations/index.js';
import type { Database } from './schema.js';

export type Engine = 'sqlite' | 'postgres';

export interface Db {
  kysely: Kysely<Database>;
  engine: Engine;
  /** PostgreSQL's connection pool (for its gauges); undefined on SQLite. */
  pool?: pg.Pool;
  /** SQLite's transactions on its one connection; undefined on PostgreSQL. */
  sqlite?: SqliteTransactions;
  close(): Promise<void>;
}

/** How transactions share SQLite's one connection (SqliteConnectionQueue) and its commits (SqliteGroupCommit). */
export interface SqliteTransactions {
  /** Runs `start` (Kysely's startTransaction().execute(), which takes the connection synchronously) as a transaction in the queue. */
  starting<T>(start: () => Promise<T>): Promise<T>;
  /** Settles once the transaction now holding the connection is committed with its group; rejects if that COMMIT fails. */
  durable(): Promise<void>;
  /** Groups committed, and the transactions they held. */
  readonly counts: SqliteGroupCommit['counts'];
  /** Statements that waited for another connection's lock (another process's, or the checkpoint thread's). */
  readonly lockWaits: LockWaits;
}

let pgModule: typeof pg | undefined;

/** node-postgres, loaded only for a PostgreSQL database: a server on SQLite never needs its ~3 MB of heap. */
export async function loadPg(): Promise<typeof pg> {
  if (pgModule) return pgModule;
  const { default: loaded } = await import('pg');
  // BIGINT columns hold millisecond timestamps, well inside JavaScript's safe integer range.
  loaded.types.setTypeParser(loaded.types.builtins.INT8, (value) => Number(value));
  return (pgModule = loaded);
}

/** node-postgres once loadPg has loaded it (a PostgreSQL database is open). */
export function loadedPg(): typeof pg {
  if (!pgModule) throw new Error('node-postgres is loaded only for a PostgreSQL database');
  return pgModule;
}

export interface OpenOptions {
  /** SQLite: when the checkpoint thread runs (tests make it eager). */
  checkpoint?: CheckpointOptions;
}

function openSqlite(path: string, options: OpenOptions): { kysely: Kysely<Database>; sqlite: SqliteTransactions; stop: () => Promise<void> } {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const database = new SQLite(path);
  database.pragma('journal_mode = WAL');
  database.pragma('synchronous = NORMAL');
  // Waits for another connection's lock happen on timers (storage/sqlite-busy.ts), never in a thread sleep.
  database.pragma('busy_timeout = 0');
  // Statement and savepoint journals in memory: a send's notification rows (one per member of its room)
  // touch a page each, and past 64 KiB of them the journal was a temporary file, written at every send.
  database.pragma('temp_store = MEMORY');
  // Checkpoints run in a thread of their own (storage/checkpoint.ts), never in a request's COMMIT;
  // should that thread die, this connection checkpoints itself again as SQLite does by default.
  const checkpointer = WalCheckpointer.start(path, () => database.open && database.pragma('wal_autocheckpoint = 1000'), options.checkpoint);
  if (checkpointer) database.pragma('wal_autocheckpoint = 0');
  const group = new SqliteGroupCommit(database);
  const queue = new SqliteConnectionQueue();
  const lockWaits: LockWaits = { waits: 0, seconds: 0 };
  const kysely = new Kysely<Database>({ dialect: new MigratingSqliteDialect(group, queue, database, lockWaits, { database: withStatementCache(database, group) }) });
  const sqlite: SqliteTransactions = {
    starting(start) {
      queue.markTransaction(true);
      try {
        return start();
      } finally {
        queue.markTransaction(false);
      }
    },
    durable: () => group.durable(),
    counts: group.counts,
    lockWaits,
  };
  return { kysely, sqlite, stop: async () => checkpointer?.close() };
}

/**
 * SQLite's statements do not wait, so the connection passes from one request's query to the next
 * waiting one's inside a single run of promise callbacks: under load, fifty requests' queries ran
 * one after another for hundreds of milliseconds in one turn of the event loop (a profile's busy
 * runs, up to a second), with no request read and no answer or woken sync sent meanwhile. Having
 * taken the connection, a query (or a transaction) first lets the loop turn once the current turn has
 * run for TURN_BUDGET_MS.
 */
const TURN_BUDGET_MS = 10;
const turnBudget = {
  turnStart: 0,
  marking: false,
  /** `beforeYield` runs when the current turn is over budget, just before this lets the loop turn. */
  async spent(beforeYield: () => void): Promise<void> {
    const now = performance.now();
    if (!this.marking) {
      // The next check phase starts a new turn's count; until then this turn counts from now.
      this.marking = true;
      this.turnStart = now;
      setImmediate(() => {
        this.marking = false;
      });
      return;
    }
    if (now - this.turnStart >= TURN_BUDGET_MS) {
      beforeYield();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  },
};

/**
 * Kysely runs SQLite migrations one statement at a time with no lock, so two processes starting
 * on one new database both apply the same migration, and a crash leaves one half applied. SQLite
 * does DDL inside transactions: claiming it makes the migrator run them all in one transaction,
 * which begins IMMEDIATE (SqliteGroupCommit.begin), so a second process waits for the first and then finds nothing to do.
 */
class MigratingSqliteDialect extends SqliteDialect {
  constructor(
    private readonly group: SqliteGroupCommit,
    private readonly queue: SqliteConnectionQueue,
    private readonly database: SQLite.Database,
    private readonly lockWaits: LockWaits,
    config: ConstructorParameters<typeof SqliteDialect>[0],
  ) {
    super(config);
  }

  override createDriver(): Driver {
    const driver = super.createDriver();
    const { group, queue, database, lockWaits } = this;
    // A statement refused for another connection's lock is tried again if it ran outside any transaction.
    const outsideTransaction = () => !database.inTransaction;
    // Lent to others' queries while a statement waits for another connection's lock, then taken back in turn.
    const held = (transaction: boolean) => ({
      release: () => queue.release(),
      reacquire: () => {
        queue.markTransaction(transaction);
        return queue.acquire();
      },
    });
    const queryHeld = held(false);
    const transactionHeld = held(true);
    // Kysely's own lock on the connection is taken once and kept: the queue below orders its users.
    const acquirePlain = driver.acquireConnection.bind(driver);
    const acquire = async (): Promise<DatabaseConnection> => {
      const plain = await acquirePlain();
      return {
        executeQuery: (query) => whenNotBusy(() => plain.executeQuery(query), outsideTransaction, lockWaits, queryHeld),
        streamQuery: (query, chunkSize) => plain.streamQuery(query, chunkSize),
      };
    };
    let connection: Promise<DatabaseConnection> | undefined;
    const destroy = driver.destroy.bind(driver);
    driver.acquireConnection = async () => {
      await queue.acquire();
      // Holding the connection: it is the next in line's only after this turn of the loop. The open
      // group is committed first, so that other processes' writers do not wait on its lock meanwhile.
      await turnBudget.spent(() => group.flush());
      return (connection ??= acquire());
    };
    driver.releaseConnection = async () => {
      group.released(queue.waiting);
      queue.release();
    };
    // Transactions are units of the connection's group commit (see SqliteGroupCommit).
    driver.beginTransaction = () => whenNotBusy(() => group.begin(), outsideTransaction, lockWaits, transactionHeld);
    driver.commitTransaction = async () => group.commit();
    driver.rollbackTransaction = async () => group.rollback();
    driver.destroy = async () => {
      group.close();
      await destroy();
    };
    return driver;
  }

  override createAdapter(): DialectAdapter {
    return new (class extends SqliteAdapter {
      override get supportsTransactionalDdl(): boolean {
        return true;
      }
    })();
  }
}

/**
 * Kysely prepares every query afresh, and on hot paths SQLite's parsing and planning costs as much
 * as running the query. Statements are reused by SQL text; they run on the same single connection
 * under Kysely's lock, so nothing else changes. Bounded, since `IN (...)` lists vary the text.
 */
function withStatementCache(database: SQLite.Database, group: SqliteGroupCommit): SqliteDatabase {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => database.close(),
    prepare(sql: string) {
      let statement = cache.get(sql);
      if (statement === undefined) {
        statement = database.prepare(sql);
        if (cache.size >= 500) cache.clear();
        cache.set(sql, statement);
      }
      // Kysely prepares a statement right before it runs it.
      group.beforeStatement(statement.reader);
      return statement;
    },
  };
}

export type PostgresArgs = Extract<Config['database'], { name: 'psycopg2' | 'postgres' | 'postgresql' }>['args'];

/** Synapse's database args as node-postgres connection options. */
export function pgConnectionOptions(args: PostgresArgs): pg.ClientConfig {
  return { user: args.user, password: args.password, database: args.database ?? args.dbname, host: args.host, port: args.port };
}

type QueryMethod = (...args: unknown[]) => unknown;

/**
 * Sends the hot queries (compiled.ts) as named prepared statements: parsed and planned once per
 * connection instead of on every call. Measured on the project's 2-core machine under load (7 to
 * 10), interleaved rounds: the token lookup took 140-250 µs a round trip named against 190-780 µs
 * unnamed. Every other query goes as before, as an unnamed statement.
 */
function prepareHotQueries(client: pg.PoolClient): void {
  const target = client as unknown as { query: QueryMethod };
  let withCommit: DeferredStatement[] = [];
  target.query = function (this: unknown, ...args: unknown[]) {
    // Looked up on each call, not bound once: whoever wraps Client.prototype.query later still sees these.
    const query = (Object.getPrototypeOf(client) as { query: QueryMethod }).query;
    const [text, values] = args;
    if (typeof text === 'string' && args.length <= 2) {
      if (text.startsWith(DEFER_MARK)) {
        const id = Number(text.slice(DEFER_MARK.length));
        withCommit.push(...(deferredBatches.get(id) ?? []));
        deferredBatches.delete(id);
        return Promise.resolve({ command: 'SELECT', rowCount: 0, rows: [] });
      }
      if (withCommit.length > 0 && (text === 'commit' || text === 'rollback')) {
        const batch = withCommit;
        withCommit = [];
        if (text === 'rollback') {
          for (const d of batch) d.reject(new Error('the transaction rolled back'));
          return query.apply(client, args);
        }
        return (query.call(client, [...batch.map((d) => d.sql), 'commit'].join(';\n')) as Promise<pg.QueryResult[]>).then(
          (results) => {
            batch.forEach((d, i) => d.resolve(results[i]!.rows));
            return results[batch.length];
          },
          (err: unknown) => {
            for (const d of batch) d.reject(err);
            throw err;
          },
        );
      }
    }
    const name = typeof text === 'string' && args.length <= 2 ? preparedStatementNames.get(text) : undefined;
    return name === undefined ? query.apply(client, args) : query.call(client, { name, text, values });
  };
}

/**
 * Statements sent with their transaction's COMMIT, in one round trip (a simple query: parameters
 * written in as literals). What this saves is the time between the last statement's answer and the
 * COMMIT: on a busy process, an event-loop turn or more, during which every lock the transaction
 * holds (a room's row, the stream position) is held too. See Store.deferToCommit.
 */
export interface DeferredStatement {
  sql: string;
  resolve(rows: unknown[]): void;
  reject(err: unknown): void;
}
const DEFER_MARK = '/* myelin: with the commit */ ';
const deferredBatches = new Map<number, DeferredStatement[]>();
let nextBatch = 0;

/**
 * The text that, executed on a transaction's connection, hands it `statements` to send with its
 * COMMIT (and to drop on ROLLBACK), each settled with its rows; nothing goes to the database then.
 */
export function deferredStatementsText(statements: DeferredStatement[]): string {
  const id = ++nextBatch;
  deferredBatches.set(id, statements);
  return DEFER_MARK + String(id);
}

async function openPostgres(args: PostgresArgs): Promise<{ kysely: Kysely<Database>; pool: pg.Pool }> {
  const pool = new (await loadPg()).Pool({ ...pgConnectionOptions(args), max: args.cp_max });
  // An idle client that loses its connection must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  pool.on('connect', prepareHotQueries);
  return { kysely: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), pool };
}

const provider: MigrationProvider = { getMigrations: async () => migrations };

/** Opens the configured database and brings its schema up to date. */
export async function openDb(database: Config['database'], options: OpenOptions = {}): Promise<Db> {
  const engine: Engine = database.name === 'sqlite3' || database.name === 'sqlite' ? 'sqlite' : 'postgres';
  const { kysely, pool, stop, sqlite } =
    'host' in database.args ? { ...(await openPostgres(database.args)), stop: async () => undefined, sqlite: undefined } : { ...openSqlite(database.args.database, options), pool: undefined };
  // The checkpoint thread's connection closes last: the final checkpoint runs there, not on this thread.
  const close = async () => {
    await kysely.destroy();
    await stop();
  };
  const migrator = new Migrator({ db: kysely, provider });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    await close();
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${String(error)}`);
  }
  return { kysely, engine, pool, sqlite, close };
}

/** True when a write failed because a row with the same unique key already exists. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string } | null;
  return e?.code === '23505' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE';
}
