import { z } from 'zod';
import { MatrixError, badJson, invalidParam, missingParam } from '../errors.js';

/**
 * Typed request input at the edge: each route parses its body and query with one zod schema, so
 * services receive typed values and a bad field gets the same answer everywhere:
 * absent where required -> M_MISSING_PARAM (M_BAD_JSON inside a nested object), wrong JSON type ->
 * M_BAD_JSON, right type but a value out of range, too long or not one of the allowed ones ->
 * M_INVALID_PARAM; each names the field.
 * (Query parameters are strings, so a wrong one is M_INVALID_PARAM rather than M_BAD_JSON.)
 */

/** An optional field that also takes null as absent, as Matrix clients often send it. */
export function optional<T extends z.ZodType>(schema: T) {
  return schema.nullish().transform((value) => value ?? undefined);
}

/** The body as a JSON object; a missing body counts as empty. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const input = body === undefined ? {} : body;
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw badJson('Request body must be a JSON object');
  return parseWith(schema, input, 'body');
}

/** Query parameters (each a string, or absent). */
export function parseQuery<S extends z.ZodType>(schema: S, query: Record<string, string | undefined>): z.output<S> {
  return parseWith(schema, query, 'query');
}

function parseWith<S extends z.ZodType>(schema: S, input: unknown, where: 'body' | 'query'): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw errorFor(result.error.issues[0]!, input, where);
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function errorFor(issue: z.core.$ZodIssue, input: unknown, where: 'body' | 'query'): MatrixError {
  const field = issue.path.map(String).join('.') || '(body)';
  if (issue.code === 'custom' && typeof issue.params?.matrix === 'function') return (issue.params.matrix as () => MatrixError)();
  // A missing top-level field is M_MISSING_PARAM; one missing inside a nested object makes that
  // object malformed, M_BAD_JSON ("missing required keys", in the spec's words), as Synapse answers.
  if (valueAt(input, issue.path) === undefined) return where === 'query' || issue.path.length <= 1 ? missingParam(field) : badJson(`Missing field: ${field}`);
  if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    // A value that got inside one alternative (an object with a bad field) answers with that one's
    // problem, then one of the right type but a wrong value; one that matched none of the types is a
    // wrong type (e.g. a push rule action: a known string or a tweak object).
    const tried =
      issue.errors.find((branch) => branch.some((i) => i.path.length > 0)) ?? issue.errors.find((branch) => branch.some((i) => i.code !== 'invalid_type'));
    if (tried) return errorFor({ ...tried[0]!, path: [...issue.path, ...tried[0]!.path] } as z.core.$ZodIssue, input, where);
    return wrongType(field, issue.errors.map((branch) => describe((branch[0] as z.core.$ZodIssueInvalidType).expected)).join(' or '), where);
  }
  if (issue.code === 'invalid_type') return wrongType(field, describe(issue.expected), where);
  if (issue.code === 'invalid_value') {
    // z.enum and z.literal check the value, not its type: a number where one of some strings is expected is a wrong type.
    const value = valueAt(input, issue.path);
    const types = [...new Set(issue.values.map((v) => (v === null ? 'null' : typeof v)))];
    if (!types.includes(value === null ? 'null' : typeof value)) return wrongType(field, types.map(describe).join(' or '), where);
  }
  if (issue.code === 'unrecognized_keys') return badJson(`Unknown field${issue.keys.length > 1 ? 's' : ''}: ${issue.keys.join(', ')}`);
  return invalidParam(`'${field}': ${issue.message}`);
}

function describe(expected: string): string {
  return expected === 'int' ? 'an integer' : `${/^[aeiou]/.test(expected) ? 'an' : 'a'} ${expected}`;
}

function wrongType(field: string, expected: string, where: 'body' | 'query'): MatrixError {
  return where === 'query' ? invalidParam(`'${field}' must be ${expected}`) : badJson(`'${field}' must be ${expected}`);
}

/** Options for `.refine()` whose failure answers with this exact Matrix error (e.g. M_INVALID_USERNAME). */
export function refuseWith(error: () => MatrixError): { params: { matrix: () => MatrixError } } {
  return { params: { matrix: error } };
}

/**
 * A JSON object used as a map (user ID -> ..., room ID -> ...): every key and value checked, the
 * result a map without a prototype. zod's own record skips a "__proto__" key, unchecked and
 * dropped; a client may send one, and it must be refused or kept like any other key.
 */
export function dict<K extends z.ZodType<string, string>, V extends z.ZodType>(key: K, value: V): z.ZodType<Record<z.output<K>, z.output<V>>> {
  return z.unknown().transform((input, ctx) => {
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      ctx.issues.push({ code: 'invalid_type', expected: 'object', input });
      return z.NEVER;
    }
    const out = Object.create(null) as Record<string, unknown>;
    for (const name of Object.keys(input)) {
      const checkedKey = key.safeParse(name);
      if (!checkedKey.success) {
        for (const issue of checkedKey.error.issues) ctx.issues.push({ ...issue, path: [name], input: name } as never);
        continue;
      }
      const checkedValue = value.safeParse((input as Record<string, unknown>)[name]);
      if (!checkedValue.success) {
        for (const issue of checkedValue.error.issues) ctx.issues.push({ ...issue, path: [name, ...issue.path] } as never);
        continue;
      }
      out[checkedKey.data] = checkedValue.data;
    }
    return out as Record<z.output<K>, z.output<V>>;
  }) as unknown as z.ZodType<Record<z.output<K>, z.output<V>>>;
}
