import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { MatrixError } from '../src/errors.js';
import { dict, optional, parseBody, parseQuery, refuseWith } from '../src/http/parse.js';

const schema = z.object({
  name: z.string().max(5),
  nested: z.object({ count: z.number().int().min(0) }),
  flag: optional(z.boolean()),
  kind: optional(z.enum(['a', 'b'])),
  tags: optional(z.array(z.string()).max(2)),
  id: optional(z.string().refine((v) => v.startsWith('!'), refuseWith(() => new MatrixError(400, 'M_INVALID_ROOM_ID', 'not a room')))),
});

function refusal(fn: () => unknown): { errcode: string; error: string; status: number } {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof MatrixError, String(err));
    return { errcode: err.errcode, error: err.message, status: err.status };
  }
  assert.fail('expected a refusal');
}

describe('typed request input', () => {
  it('returns typed values, null and absent optional fields alike as undefined', () => {
    const value = parseBody(schema, { name: 'abc', nested: { count: 2 }, flag: null, tags: ['x'] });
    assert.equal(value.name, 'abc');
    assert.deepEqual(value.nested, { count: 2 });
    assert.deepEqual(value.tags, ['x']);
    assert.ok('flag' in value && value.flag === undefined, 'null reads as undefined');
    assert.equal(value.kind, undefined);
    const flag: boolean | undefined = value.flag;
    assert.equal(flag, undefined);
  });

  it('names the field in M_MISSING_PARAM, M_BAD_JSON and M_INVALID_PARAM as the spec uses them', () => {
    assert.deepEqual(refusal(() => parseBody(schema, { nested: { count: 1 } })), { errcode: 'M_MISSING_PARAM', error: 'Missing parameter: name', status: 400 });
    assert.deepEqual(refusal(() => parseBody(schema, { name: 'a' })), { errcode: 'M_MISSING_PARAM', error: 'Missing parameter: nested', status: 400 });
    assert.deepEqual(refusal(() => parseBody(schema, { name: 7, nested: { count: 1 } })), { errcode: 'M_BAD_JSON', error: "'name' must be a string", status: 400 });
    assert.equal(refusal(() => parseBody(schema, { name: 'a', nested: { count: 1.5 } })).error, "'nested.count' must be an integer");
    assert.equal(refusal(() => parseBody(schema, { name: 'a', nested: { count: 1 }, tags: ['x', 3] })).error, "'tags.1' must be a string");
    const tooLong = refusal(() => parseBody(schema, { name: 'abcdef', nested: { count: 1 } }));
    assert.equal(tooLong.errcode, 'M_INVALID_PARAM');
    assert.match(tooLong.error, /^'name': /);
    assert.equal(refusal(() => parseBody(schema, { name: 'a', nested: { count: -1 } })).errcode, 'M_INVALID_PARAM');
    assert.equal(refusal(() => parseBody(schema, { name: 'a', nested: { count: 1 }, kind: 'c' })).errcode, 'M_INVALID_PARAM');
    assert.equal(refusal(() => parseBody(schema, { name: 'a', nested: { count: 1 }, tags: ['a', 'b', 'c'] })).errcode, 'M_INVALID_PARAM');
  });

  it('answers a refinement with its own Matrix error', () => {
    assert.deepEqual(refusal(() => parseBody(schema, { name: 'a', nested: { count: 1 }, id: 'x' })), { errcode: 'M_INVALID_ROOM_ID', error: 'not a room', status: 400 });
  });

  it('takes a missing body as empty and refuses a body that is not an object', () => {
    assert.equal(parseBody(z.object({ x: optional(z.string()) }), undefined).x, undefined);
    for (const body of [null, [], 'text', 3]) assert.equal(refusal(() => parseBody(schema, body)).errcode, 'M_BAD_JSON');
  });

  it('answers a bad query parameter with M_INVALID_PARAM', () => {
    const query = z.object({ limit: optional(z.string().regex(/^\d+$/)), dir: z.enum(['b', 'f']) });
    const parsed = parseQuery(query, { dir: 'b' });
    assert.equal(parsed.dir, 'b');
    assert.equal(parsed.limit, undefined);
    assert.equal(refusal(() => parseQuery(query, { dir: 'x' })).errcode, 'M_INVALID_PARAM');
    assert.equal(refusal(() => parseQuery(query, { dir: 'b', limit: 'ten' })).errcode, 'M_INVALID_PARAM');
    assert.equal(refusal(() => parseQuery(query, {})).errcode, 'M_MISSING_PARAM');
  });

  it('checks every key of a map, "__proto__" included, and returns a map without a prototype', () => {
    const rooms = z.object({ rooms: dict(z.string().regex(/^!/), z.object({ n: z.number() })) });
    const anyKey = z.object({ rooms: dict(z.string(), z.object({ n: z.number() })) });
    const parsed = parseBody(anyKey, JSON.parse('{"rooms":{"__proto__":{"n":1},"!a":{"n":2}}}'));
    assert.deepEqual(Object.keys(parsed.rooms), ['__proto__', '!a']);
    assert.equal(Object.getPrototypeOf(parsed.rooms), null);
    assert.deepEqual(parsed.rooms['__proto__'], { n: 1 });
    assert.equal(refusal(() => parseBody(rooms, JSON.parse('{"rooms":{"__proto__":{"n":1}}}'))).error.startsWith("'rooms.__proto__'"), true);
    assert.deepEqual(refusal(() => parseBody(anyKey, JSON.parse('{"rooms":{"__proto__":{"n":"x"}}}'))).error, "'rooms.__proto__.n' must be a number");
    // Missing inside a nested object: the object is malformed (the spec's M_BAD_JSON, "missing required keys").
    assert.deepEqual(refusal(() => parseBody(anyKey, { rooms: { '!a': {} } })), { errcode: 'M_BAD_JSON', error: 'Missing field: rooms.!a.n', status: 400 });
    assert.equal(refusal(() => parseBody(anyKey, { rooms: 5 })).errcode, 'M_BAD_JSON');
    assert.equal(refusal(() => parseBody(anyKey, {})).errcode, 'M_MISSING_PARAM');
  });
});
