import { badJson, type MatrixError } from '../errors.js';

/**
 * The deepest nesting of objects and arrays a request body may have (the body itself is level 1).
 * Nothing the spec defines comes near it (signed device keys, push rule conditions and filters
 * are under 10 levels; account data and to-device content are client-defined but shallow in
 * practice), while the recursive code every body meets later (JSON.stringify, schema checks,
 * canonical JSON for signatures) overflows the stack at a few thousand levels. The spec's
 * canonical JSON limits sizes and integers, not depth, so the bound is ours.
 */
export const MAX_JSON_DEPTH = 100;

/** A body this short cannot nest deeper than MAX_JSON_DEPTH: each level takes at least two characters. */
const SHORTEST_TOO_DEEP = 2 * (MAX_JSON_DEPTH + 1);

/**
 * Checks a parsed JSON body in one iterative walk (a recursive one could overflow on the very
 * input it guards against): nesting no deeper than MAX_JSON_DEPTH, and no U+0000 in any key or
 * string value at any depth. PostgreSQL cannot store U+0000 in text, SQLite can, so it is refused
 * here, once for every endpoint and both engines alike. Answers M_BAD_JSON: the JSON is valid but
 * its content is not acceptable (the spec's meaning of M_BAD_JSON).
 *
 * `text` is the raw body; JSON can only carry U+0000 as the escape `\u0000`, so a body without
 * that text (the common case) needs no string checks, and a short one no walk at all.
 */
export function checkJsonBody(value: unknown, text: string): MatrixError | undefined {
  // An escaped backslash followed by "u0000" also matches; the walk below decides.
  const checkNul = text.includes('\\u0000');
  if (!checkNul && text.length < SHORTEST_TOO_DEEP) return undefined;
  const values: unknown[] = [value];
  const depths: number[] = [1];
  while (values.length > 0) {
    const current = values.pop();
    const depth = depths.pop()!;
    if (typeof current === 'string') {
      if (current.includes('\0')) return badJson('Strings may not contain U+0000');
      continue;
    }
    if (current === null || typeof current !== 'object') continue;
    if (depth > MAX_JSON_DEPTH) return badJson(`JSON is nested more than ${MAX_JSON_DEPTH} levels deep`);
    const children: unknown[] = Array.isArray(current) ? current : Object.values(current as Record<string, unknown>);
    if (checkNul && !Array.isArray(current)) {
      for (const key of Object.keys(current)) if (key.includes('\0')) return badJson('Keys may not contain U+0000');
    }
    for (const child of children) {
      if ((child !== null && typeof child === 'object') || (checkNul && typeof child === 'string')) {
        values.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return undefined;
}

/** True when any key or value holds U+0000 (query strings, path parameters, form fields). */
export function hasNul(entries: Iterable<[string, string | readonly string[] | undefined]>): boolean {
  for (const [key, value] of entries) {
    if (key.includes('\0')) return true;
    if (typeof value === 'string' ? value.includes('\0') : value?.some((v) => v.includes('\0'))) return true;
  }
  return false;
}
