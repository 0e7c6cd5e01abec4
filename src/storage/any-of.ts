import { sql, type RawBuilder } from 'kysely';
import type { Engine } from './db.js';

/**
 * `column IN (values)` for a long list of values. On PostgreSQL `column = ANY($1)` with the list as
 * one array parameter: a 500-value IN list costs PostgreSQL milliseconds to plan, and node-postgres
 * encodes each parameter apart. SQLite has no arrays: an IN list of parameters there.
 */
export function anyOf(engine: Engine, column: string, values: readonly (string | number)[], type: 'text' | 'bigint' = 'text'): RawBuilder<boolean> {
  if (engine === 'postgres') return sql<boolean>`${sql.ref(column)} = ANY(${[...values]}::${sql.raw(type)}[])`;
  return values.length === 0 ? sql<boolean>`1 = 0` : sql<boolean>`${sql.ref(column)} IN (${sql.join([...values])})`;
}
