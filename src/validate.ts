import { badJson, missingParam, MatrixError } from './errors.js';

export type JsonObject = Record<string, unknown>;

/**
 * An empty object without a prototype, for answers keyed by what clients send (room, device, key
 * IDs): a key such as `__proto__` or `constructor` is then an ordinary key, not Object.prototype's.
 */
export function dictionary<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/** A JSON object: not null, not an array. */
export function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The body as a JSON object; a missing body counts as empty, anything but an object is M_BAD_JSON. */
export function objectBody(body: unknown): JsonObject {
  if (body === undefined) return {};
  if (!isObject(body)) throw badJson('Request body must be a JSON object');
  return body;
}

/** A parameter that must be a JSON object: M_MISSING_PARAM when absent, M_BAD_JSON when something else. */
export function requireObject(value: unknown, name: string): JsonObject {
  if (value === undefined || value === null) throw missingParam(name);
  if (!isObject(value)) throw badJson(`'${name}' must be an object`);
  return value;
}

export function requireString(body: JsonObject, key: string, maxLength = 65536): string {
  const value = body[key];
  if (value === undefined || value === null) throw missingParam(key);
  if (typeof value !== 'string') throw badJson(`'${key}' must be a string`);
  if (value.length > maxLength) throw new MatrixError(400, 'M_INVALID_PARAM', `'${key}' is too long`);
  return value;
}

export function optionalString(body: JsonObject, key: string, maxLength = 65536): string | undefined {
  if (body[key] === undefined || body[key] === null) return undefined;
  return requireString(body, key, maxLength);
}

export function optionalBoolean(body: JsonObject, key: string): boolean | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw badJson(`'${key}' must be a boolean`);
  return value;
}

export function optionalInteger(body: JsonObject, key: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) throw badJson(`'${key}' must be an integer`);
  if (value < min || value > max) throw new MatrixError(400, 'M_INVALID_PARAM', `'${key}' is out of range`);
  return value;
}

export function requireStringArray(body: JsonObject, key: string, maxItems = 1000): string[] {
  const value = body[key];
  if (value === undefined || value === null) throw missingParam(key);
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw badJson(`'${key}' must be an array of strings`);
  if (value.length > maxItems) throw new MatrixError(400, 'M_INVALID_PARAM', `'${key}' has too many items`);
  return value as string[];
}
