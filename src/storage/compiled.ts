import { CompiledQuery, type Compilable, type Kysely, type QueryResult } from 'kysely';
import type { Database } from './schema.js';

/**
 * The SQL of every hot query, with the name PostgreSQL connections prepare it under (db.ts): a
 * handful of fixed texts, so each connection holds a bounded set of prepared statements.
 */
export const preparedStatementNames = new Map<string, string>();

/** Stands for the n-th argument while a query is built once. */
class Slot {
  constructor(readonly index: number) {}
}

interface Template {
  compiled: CompiledQuery;
  /** Per SQL parameter: the argument it takes, or -1 for a constant kept from the build. */
  slots: number[];
}

/**
 * A hot query, built and compiled once per SQL dialect instead of on every call: on hot paths
 * Kysely's building and compiling cost about as much as SQLite running the statement. `build` gets
 * placeholders for the arguments (declared one by one: their count is read off it) and must always build the same shape of query (no branching on
 * them); each call only swaps the arguments into the compiled parameters.
 */
export class HotQuery<A extends unknown[], R> {
  private readonly templates = new Map<unknown, Template>();

  constructor(private readonly build: (db: Kysely<Database>, ...args: A) => Compilable<R>) {}

  private template(db: Kysely<Database>): Template {
    // Transactions share their database's adapter, so this is one entry per engine in practice.
    const dialect = db.getExecutor().adapter.constructor;
    let template = this.templates.get(dialect);
    if (template === undefined) {
      const markers = Array.from({ length: this.build.length - 1 }, (_, i) => new Slot(i)) as unknown as A;
      const compiled = this.build(db, ...markers).compile();
      const slots = compiled.parameters.map((p) => (p instanceof Slot ? p.index : -1));
      template = { compiled, slots };
      this.templates.set(dialect, template);
      if (!preparedStatementNames.has(compiled.sql)) preparedStatementNames.set(compiled.sql, `myelin_hot_${preparedStatementNames.size + 1}`);
    }
    return template;
  }

  execute(db: Kysely<Database>, ...args: A): Promise<QueryResult<R>> {
    const { compiled, slots } = this.template(db);
    const parameters = slots.map((slot, i) => (slot < 0 ? compiled.parameters[i] : args[slot]));
    return db.executeQuery<R>({ ...compiled, parameters } as CompiledQuery<R>);
  }
}

/**
 * A hot statement written as SQL text for one engine (where Kysely's builder cannot say it, e.g. a
 * PostgreSQL data-modifying CTE), prepared by name on PostgreSQL connections like a HotQuery.
 */
export class RawHotQuery<R> {
  constructor(private readonly text: string) {
    if (!preparedStatementNames.has(text)) preparedStatementNames.set(text, `myelin_hot_${preparedStatementNames.size + 1}`);
  }

  execute(db: Kysely<Database>, parameters: readonly unknown[]): Promise<QueryResult<R>> {
    return db.executeQuery<R>(CompiledQuery.raw(this.text, [...parameters]) as CompiledQuery<R>);
  }
}
