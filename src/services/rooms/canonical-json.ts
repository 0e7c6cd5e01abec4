import { badJson } from '../../errors.js';

/**
 * Matrix canonical JSON (spec appendices, "Canonical JSON"): no insignificant whitespace, object
 * keys sorted by Unicode code point, strings escaped as JSON.stringify escapes them (`\"`, `\\`,
 * the short escapes, lowercase `\u00xx` for the other control characters, everything else
 * literal), and numbers only integers in [-(2^53)+1, 2^53-1]. -0 is written as 0, as the spec's
 * example shows. What is hashed and signed (events, keys) goes through `canonicalJson`.
 */

/** The largest integer canonical JSON allows, 2^53 - 1 (the smallest is its negative). */
export const MAX_CANONICAL_INTEGER = Number.MAX_SAFE_INTEGER;

/**
 * Orders two strings by Unicode code point. JavaScript's default sort compares UTF-16 code units,
 * which puts a supplementary-plane character (a surrogate pair, D800-DFFF) before U+E000..U+FFFF;
 * by code point it comes after. Only that range is out of order, so the first differing unit is
 * compared with surrogates moved above U+FFFF's units.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

function codePointRank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit < 0xe000 ? unit + 0x2000 : unit - 0x800;
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function describeNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return 'an infinite number';
  if (!Number.isInteger(n)) return `a non-integer (${n})`;
  return `an integer outside ±(2^53-1) (${n})`;
}

function at(path: string): string {
  return path === '' ? 'the value' : `'${path}'`;
}

function child(path: string, key: string | number): string {
  return typeof key === 'number' ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`;
}

/**
 * Encodes `value` as canonical JSON. A float, NaN, an infinity or an integer beyond ±(2^53-1)
 * anywhere inside is M_BAD_JSON, as is anything that is not JSON (a function, a bigint, a
 * non-plain object). Object properties whose value is `undefined` are left out, as JSON.stringify
 * leaves them out; `undefined` anywhere else is M_BAD_JSON.
 */
export function canonicalJson(value: unknown): string {
  return encode(value, '', true);
}

/**
 * The same encoding without the number rules: keys sorted by code point, numbers as
 * JSON.stringify writes them (floats kept). For comparing request bodies that may legitimately
 * hold floats (e.g. UIA parameters); never for what is hashed or signed.
 */
export function sortedJson(value: unknown): string {
  return encode(value, '', false);
}

function encode(value: unknown, path: string, strict: boolean): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (Number.isSafeInteger(value)) return Object.is(value, -0) ? '0' : String(value);
      if (strict) throw badJson(`${at(path)} is ${describeNumber(value)}: only integers in ±(2^53-1) are allowed`);
      return JSON.stringify(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) return `[${value.map((item, i) => encode(item, child(path, i), strict)).join(',')}]`;
      if (!isPlainObject(value)) throw badJson(`${at(path)} is not a JSON value`);
      const parts: string[] = [];
      for (const key of Object.keys(value).sort(compareCodePoints)) {
        const item = value[key];
        if (item === undefined) continue;
        parts.push(`${JSON.stringify(key)}:${encode(item, child(path, key), strict)}`);
      }
      return `{${parts.join(',')}}`;
    }
    default:
      throw badJson(`${at(path)} is not a JSON value`);
  }
}

/**
 * Throws M_BAD_JSON when `value` holds a number canonical JSON does not allow (a float, NaN, an
 * infinity, an integer beyond ±(2^53-1)) at any depth. `where` names the value in the message
 * (e.g. 'content'). For event content a client sends: room versions 6 and later require it.
 */
export function checkCanonicalNumbers(value: unknown, where: string): void {
  const stack: [unknown, string][] = [[value, where]];
  while (stack.length > 0) {
    const [item, path] = stack.pop()!;
    if (typeof item === 'number') {
      if (!Number.isSafeInteger(item)) throw badJson(`${at(path)} is ${describeNumber(item)}: only integers in ±(2^53-1) are allowed`);
    } else if (Array.isArray(item)) {
      item.forEach((entry, i) => stack.push([entry, child(path, i)]));
    } else if (item !== null && typeof item === 'object') {
      for (const key of Object.keys(item)) stack.push([(item as Record<string, unknown>)[key], child(path, key)]);
    }
  }
}
