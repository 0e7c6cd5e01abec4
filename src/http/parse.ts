import { z } from 'zod';
import { MatrixError, badJson, invalidParam, missingParam } from '../errors.js';

/**
 * Typed request input at the edge: each route parses its body and query with one zod schema, so
 * services receive typed values and a bad field gets the same answer everywhere:
 * absent where required -> M_MISSING_PARAM, wrong JSON type -> M_BAD_JSON, right type but a value
 * out of range, too long or not one of the allowed ones -> M_INVALID_PARAM; each names the field.
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
  if (valueAt(input, issue.path) === undefined) return missingParam(field);
  if (issue.code === 'invalid_type') {
    const expected = issue.expected === 'int' ? 'an integer' : `${/^[aeiou]/.test(issue.expected) ? 'an' : 'a'} ${issue.expected}`;
    return where === 'query' ? invalidParam(`'${field}' must be ${expected}`) : badJson(`'${field}' must be ${expected}`);
  }
  if (issue.code === 'unrecognized_keys') return badJson(`Unknown field${issue.keys.length > 1 ? 's' : ''}: ${issue.keys.join(', ')}`);
  return invalidParam(`'${field}': ${issue.message}`);
}

/** Options for `.refine()` whose failure answers with this exact Matrix error (e.g. M_INVALID_USERNAME). */
export function refuseWith(error: () => MatrixError): { params: { matrix: () => MatrixError } } {
  return { params: { matrix: error } };
}
