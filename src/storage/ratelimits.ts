import { sql, type Kysely } from 'kysely';
import { HotQuery } from './compiled.js';
import type { Engine } from './db.js';
import type { Database } from './schema.js';

/** The conditional upsert of take(), per engine (the larger-of function is spelt differently). */
function takeQuery(greatest: 'GREATEST' | 'MAX') {
  return new HotQuery((db: Kysely<Database>, key: string, now: number, interval: number, first: number, limit: number) => {
    const next = sql<number>`${sql.raw(greatest)}(${sql.ref('rate_limits.tat')}, ${now}) + ${interval}`;
    return db
      .insertInto('rate_limits')
      .values({ key, tat: first })
      .onConflict((oc) =>
        oc
          .column('key')
          .doUpdateSet({ tat: next })
          .where(sql<boolean>`${next} - ${now} <= ${limit}`),
      )
      .returning('tat');
  });
}
const TAKE_PG = takeQuery('GREATEST');
const TAKE_SQLITE = takeQuery('MAX');

/**
 * Token buckets kept in the database (generic cell rate algorithm), so that several processes
 * sharing one database share one limit. `interval` is the ms per token; `tolerance` the ms of burst.
 */
export class RateLimitsRepo {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly engine: Engine,
  ) {}

  /**
   * Takes one token when the bucket has one. Returns 0 when taken, else how many ms until one is free.
   * The conditional upsert makes the check and the take one atomic statement.
   */
  async take(key: string, now: number, interval: number, tolerance: number): Promise<number> {
    const query = this.engine === 'postgres' ? TAKE_PG : TAKE_SQLITE;
    const taken = await query.execute(this.db, key, now, interval, now + interval, tolerance + interval);
    if (taken.rows.length > 0) return 0;
    return this.wait(key, now, interval, tolerance);
  }

  /**
   * take() for each key in turn, stopping at the first refused one (whose wait it returns). On SQLite
   * the takes share one transaction: one commit instead of several. Postgres gains nothing from that
   * but a round trip per BEGIN and COMMIT, and would hold the first bucket's row lock longer.
   */
  async takeAll(keys: string[], now: number, interval: number, tolerance: number): Promise<number> {
    const run = async (repo: RateLimitsRepo) => {
      for (const key of keys) {
        const wait = await repo.take(key, now, interval, tolerance);
        if (wait > 0) return wait;
      }
      return 0;
    };
    if (this.engine !== 'sqlite' || keys.length < 2 || this.db.isTransaction) return run(this);
    return this.db.transaction().execute((trx) => run(new RateLimitsRepo(trx, this.engine)));
  }

  /** How long until a token is free, without taking one; 0 when one is free now. */
  async wait(key: string, now: number, interval: number, tolerance: number): Promise<number> {
    const row = await this.db.selectFrom('rate_limits').select('tat').where('key', '=', key).executeTakeFirst();
    if (!row) return 0;
    const wait = Math.max(row.tat, now) + interval - now - (tolerance + interval);
    return Math.max(0, Math.ceil(wait));
  }

  /** Forgets buckets that are full again: they hold nothing a fresh bucket would not. */
  async prune(now: number): Promise<void> {
    await this.db.deleteFrom('rate_limits').where('tat', '<', now).execute();
  }

  async reset(key: string): Promise<void> {
    await this.db.deleteFrom('rate_limits').where('key', '=', key).execute();
  }
}
