import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type MigrationProvider, type SqliteDatabase } from 'kysely';
import pg from 'pg';
import type { Config } from '../config/index.js';
import { migrations } from './migrations/index.js';
import type { Database } from './schema.js';

export type Engine = 'sqlite' | 'postgres';

export interface Db {
  kysely: Kysely<Database>;
  engine: Engine;
  /** PostgreSQL's connection pool (for its gauges); undefined on SQLite. */
  pool?: pg.Pool;
  close(): Promise<void>;
}

// BIGINT columns hold millisecond timestamps, well inside JavaScript's safe integer range.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

function openSqlite(path: string): Kysely<Database> {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const database = new SQLite(path);
  database.pragma('journal_mode = WAL');
  database.pragma('synchronous = NORMAL');
  database.pragma('busy_timeout = 5000');
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(database) }) });
}

/**
 * Kysely prepares every query afresh, and on hot paths SQLite's parsing and planning costs as much
 * as running the query. Statements are reused by SQL text; they run on the same single connection
 * under Kysely's lock, so nothing else changes. Bounded, since `IN (...)` lists vary the text.
 */
function withStatementCache(database: SQLite.Database): SqliteDatabase {
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
      return statement;
    },
  };
}

export type PostgresArgs = Extract<Config['database'], { name: 'psycopg2' | 'postgres' | 'postgresql' }>['args'];

/** Synapse's database args as node-postgres connection options. */
export function pgConnectionOptions(args: PostgresArgs): pg.ClientConfig {
  return { user: args.user, password: args.password, database: args.database ?? args.dbname, host: args.host, port: args.port };
}

function openPostgres(args: PostgresArgs): { kysely: Kysely<Database>; pool: pg.Pool } {
  const pool = new pg.Pool({ ...pgConnectionOptions(args), max: args.cp_max });
  // An idle client that loses its connection must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  return { kysely: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), pool };
}

const provider: MigrationProvider = { getMigrations: async () => migrations };

/** Opens the configured database and brings its schema up to date. */
export async function openDb(database: Config['database']): Promise<Db> {
  const engine: Engine = database.name === 'sqlite3' || database.name === 'sqlite' ? 'sqlite' : 'postgres';
  const { kysely, pool } = 'host' in database.args ? openPostgres(database.args) : { kysely: openSqlite(database.args.database), pool: undefined };
  const migrator = new Migrator({ db: kysely, provider });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    await kysely.destroy();
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${String(error)}`);
  }
  return { kysely, engine, pool, close: () => kysely.destroy() };
}

/** True when a write failed because a row with the same unique key already exists. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string } | null;
  return e?.code === '23505' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE';
}
