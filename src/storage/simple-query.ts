import { loadedPg } from './db.js';

/**
 * A compiled PostgreSQL statement with its parameters written in as literals, for a simple query
 * (which takes none). Only strings, safe integers and null are taken; the statements it is used for have
 * no `$` inside their own literals.
 */
export function inlineParameters(compiled: { sql: string; parameters: readonly unknown[] }): string {
  return compiled.sql.replace(/\$(\d+)/g, (_, n: string) => {
    const value = compiled.parameters[Number(n) - 1];
    if (typeof value === 'string') return loadedPg().escapeLiteral(value);
    if (value === null) return 'NULL';
    if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
    throw new Error(`cannot write parameter $${n} (${typeof value}) into a statement`);
  });
}
