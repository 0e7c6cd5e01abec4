/**
 * A compiled PostgreSQL statement with its parameters written in as literals, for a simple query
 * (which takes none). Only strings, safe integers and null are taken; the statements it is used for have
 * no `$` inside their own literals.
 */
export function inlineParameters(compiled: { sql: string; parameters: readonly unknown[] }): string {
  return compiled.sql.replace(/\$(\d+)/g, (_, n: string) => {
    const value = compiled.parameters[Number(n) - 1];
    if (typeof value === 'string') return stringLiteral(value);
    if (value === null) return 'NULL';
    if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
    throw new Error(`cannot write parameter $${n} (${typeof value}) into a statement`);
  });
}

/**
 * A string as a PostgreSQL literal: an escape-string constant (E'...', which reads the same whatever
 * standard_conforming_strings is) with its backslashes and quotes doubled. Native replaces, not a
 * loop over the characters: a message's whole PDU goes through here on every send.
 */
export function stringLiteral(value: string): string {
  return `E'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}
