import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../src/config/load.js';
import { MatrixError } from '../src/errors.js';
import { startHomeserver } from '../src/homeserver.js';
import { canonicalJson, checkCanonicalNumbers, compareCodePoints, sortedJson } from '../src/services/rooms/canonical-json.js';
import { decodeBase64, privateKeyFromSeed } from '../src/services/rooms/ed25519.js';
import {
  contentHash,
  ed25519Signer,
  eventIdOf,
  hasValidContentHash,
  hashAndSignEvent,
  hashSignAndIdentify,
  signJson,
  verifyEventSignature,
  verifyJsonSignature,
  type UnsignedPdu,
} from '../src/services/rooms/event-hash.js';
import type { Pdu } from '../src/services/rooms/pdu.js';
import { redactEvent } from '../src/services/rooms/redaction.js';
import { loadSigningKeys, parseSigningKeyFile, signingKeyPathOf } from '../src/services/rooms/signing-key.js';
import type { JsonObject } from '../src/validate.js';
import { freePort, startTestServer, testConfig, type TestServer } from './helpers/server.js';

// appendices.md, "Cryptographic Test Vectors".
const SPEC_SEED = 'YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1';
const specKey = ed25519Signer('ed25519:1', privateKeyFromSeed(decodeBase64(SPEC_SEED)!));

const isBadJson = (err: unknown) => err instanceof MatrixError && err.errcode === 'M_BAD_JSON' && err.status === 400;

describe('canonical JSON', () => {
  it('produces the appendix examples', () => {
    const examples: [unknown, string][] = [
      [{}, '{}'],
      [{ one: 1, two: 'Two' }, '{"one":1,"two":"Two"}'],
      [{ b: '2', a: '1' }, '{"a":"1","b":"2"}'],
      [
        { auth: { success: true, mxid: '@john.doe:example.com', profile: { display_name: 'John Doe', three_pids: [{ medium: 'email', address: 'john.doe@example.org' }, { medium: 'msisdn', address: '123456789' }] } } },
        '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}',
      ],
      [{ a: '日本語' }, '{"a":"日本語"}'],
      [{ 本: 2, 日: 1 }, '{"日":1,"本":2}'],
      [JSON.parse('{"a": "\\u65E5"}'), '{"a":"日"}'],
      [{ a: null }, '{"a":null}'],
      [JSON.parse('{"a": -0, "b": 1e10}'), '{"a":0,"b":10000000000}'],
    ];
    for (const [input, expected] of examples) assert.equal(canonicalJson(input), expected);
  });

  it('sorts keys by code point, not by UTF-16 unit', () => {
    const keys = ['\u{1F600}', '\uFFFF', '\uE000', 'z', '\u{10000}', '\uD7FF'];
    assert.equal(canonicalJson(Object.fromEntries(keys.map((k, i) => [k, i]))), '{"z":3,"\uD7FF":5,"\uE000":2,"\uFFFF":1,"\u{10000}":4,"\u{1F600}":0}');
    // What the default sort gets wrong, and a prefix coming first.
    assert.deepEqual(['\uE000', '\u{1F600}'].sort(), ['\u{1F600}', '\uE000']);
    assert.ok(compareCodePoints('\u{1F600}', '\uE000') > 0);
    assert.ok(compareCodePoints('\u{1F600}', '\u{1F601}') < 0);
    assert.ok(compareCodePoints('ab', 'abc') < 0);
    assert.equal(compareCodePoints('\u{1F600}', '\u{1F600}'), 0);
  });

  it('escapes strings as JSON.stringify does and writes the rest literally', () => {
    assert.equal(canonicalJson({ s: '\u0000\u0008\t\n\u000c\r\u001f"\\/\u007f\u2028é😀' }), '{"s":"\\u0000\\b\\t\\n\\f\\r\\u001f\\"\\\\/\u007f\u2028é😀"}');
    assert.equal(canonicalJson(['a', [true, false, null], 0, -1]), '["a",[true,false,null],0,-1]');
    // An own "__proto__" key (as JSON.parse makes one) is an ordinary key.
    assert.equal(canonicalJson(JSON.parse('{"b":1,"__proto__":{"x":1}}')), '{"__proto__":{"x":1},"b":1}');
  });

  it('allows integers up to ±(2^53-1) and refuses floats, larger integers, NaN and infinities with M_BAD_JSON', () => {
    assert.equal(canonicalJson({ max: 2 ** 53 - 1, min: -(2 ** 53 - 1) }), '{"max":9007199254740991,"min":-9007199254740991}');
    for (const bad of [1.5, 0.1, 2 ** 53, -(2 ** 53), 1e300, NaN, Infinity, -Infinity]) {
      assert.throws(() => canonicalJson({ content: { n: [bad] } }), isBadJson, String(bad));
      assert.throws(() => checkCanonicalNumbers({ n: [bad] }, 'content'), (err: unknown) => isBadJson(err) && /'content\.n\[0\]'/.test((err as Error).message), String(bad));
    }
    assert.doesNotThrow(() => checkCanonicalNumbers({ a: [1, -5, 2 ** 53 - 1, { b: 'x', c: null, d: true }] }, 'content'));
    assert.throws(() => checkCanonicalNumbers(JSON.parse('{"deep":{"er":[{"x":12345678901234567890}]}}'), 'content'), isBadJson);
  });

  it('refuses what is not JSON', () => {
    for (const bad of [undefined, () => 1, 1n, Symbol('s'), new Date(0), [undefined]]) assert.throws(() => canonicalJson({ a: [bad] }), isBadJson);
    // An undefined property is left out, as JSON.stringify leaves it out.
    assert.equal(canonicalJson({ a: undefined, b: 1 }), '{"b":1}');
  });

  it('has a lenient form for comparing bodies that may hold floats', () => {
    assert.equal(sortedJson({ b: 1.5, a: [0.25, { d: 1, c: 2 }], '\u{1F600}': 0, '\uE000': 1 }), '{"a":[0.25,{"c":2,"d":1}],"b":1.5,"\uE000":1,"\u{1F600}":0}');
  });
});

describe('signing JSON', () => {
  it('produces the appendix signatures', () => {
    assert.deepEqual(signJson({}, 'domain', specKey), {
      signatures: { domain: { 'ed25519:1': 'K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ' } },
    });
    assert.deepEqual(signJson({ one: 1, two: 'Two' }, 'domain', specKey), {
      one: 1,
      signatures: { domain: { 'ed25519:1': 'KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw' } },
      two: 'Two',
    });
  });

  it('keeps other signatures and unsigned, and verifies only what was signed', () => {
    const original = { one: 1, unsigned: { age: 5 }, signatures: { other: { 'ed25519:x': 'abc' } } };
    const signed = signJson(original, 'domain', specKey);
    assert.deepEqual(original.signatures, { other: { 'ed25519:x': 'abc' } }, 'the input is left alone');
    assert.equal(signed.signatures.other!['ed25519:x'], 'abc');
    assert.deepEqual(signed.unsigned, { age: 5 });
    const publicKey = verifyKeyOf(SPEC_SEED);
    assert.equal(verifyJsonSignature(signed, 'domain', 'ed25519:1', publicKey), true);
    assert.equal(verifyJsonSignature({ ...signed, unsigned: { age: 6 } }, 'domain', 'ed25519:1', publicKey), true, 'unsigned is not covered');
    assert.equal(verifyJsonSignature({ ...signed, one: 2 }, 'domain', 'ed25519:1', publicKey), false);
    assert.equal(verifyJsonSignature(signed, 'other', 'ed25519:1', publicKey), false);
    assert.equal(verifyJsonSignature(signed, 'domain', 'ed25519:2', publicKey), false);
    assert.equal(verifyJsonSignature(signed, 'domain', 'ed25519:1', 'not base64!'), false);
    assert.equal(verifyJsonSignature({ ...signed, f: 0.5 }, 'domain', 'ed25519:1', publicKey), false, 'not canonical JSON: no exception');
  });
});

function verifyKeyOf(seed: string): string {
  return parseSigningKeyFile(`ed25519 v ${seed}`, 'test')[0]!.publicKeyBase64;
}

describe('event hashes, signatures and IDs', () => {
  it('produces the appendix event signing vectors', () => {
    const minimal = {
      room_id: '!x:domain', sender: '@a:domain', origin: 'domain', origin_server_ts: 1000000, signatures: {}, hashes: {}, type: 'X',
      content: {}, prev_events: [], auth_events: [], depth: 3, unsigned: { age_ts: 1000000 },
    };
    const signed = hashAndSignEvent(minimal as unknown as UnsignedPdu, '10', 'domain', specKey);
    assert.deepEqual(signed, {
      ...minimal,
      hashes: { sha256: '5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos' },
      signatures: { domain: { 'ed25519:1': 'KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg' } },
    });
    const message = {
      content: { body: 'Here is the message content' }, event_id: '$0:domain', origin: 'domain', origin_server_ts: 1000000,
      type: 'm.room.message', room_id: '!r:domain', sender: '@u:domain', signatures: {}, unsigned: { age_ts: 1000000 },
    };
    const signedMessage = hashAndSignEvent(message as unknown as UnsignedPdu, '10', 'domain', specKey);
    assert.deepEqual(signedMessage, {
      ...message,
      hashes: { sha256: 'onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g' },
      signatures: { domain: { 'ed25519:1': 'Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA' } },
    });
    assert.equal(verifyEventSignature(signedMessage, '10', 'domain', 'ed25519:1', verifyKeyOf(SPEC_SEED)), true);
    assert.equal(hasValidContentHash(signedMessage), true);
  });

  it('signs and identifies an event at once exactly as signing it and then taking its reference hash do', () => {
    const message = { type: 'm.room.message', room_id: '!r:domain', sender: '@u:domain', content: { msgtype: 'm.text', body: 'hi' }, origin_server_ts: 5, depth: 2, prev_events: ['$p'], auth_events: ['$a', '$b'] };
    const member = { ...message, type: 'm.room.member', state_key: '@u:domain', content: { membership: 'join', displayname: 'U' } };
    for (const version of ['10', '11']) {
      for (const event of [message, member, { ...message, signatures: { 'other.example': { 'ed25519:z': 'sig' } } }]) {
        const both = hashSignAndIdentify(event as unknown as UnsignedPdu, version, 'domain', specKey);
        const signed = hashAndSignEvent(event as unknown as UnsignedPdu, version, 'domain', specKey);
        assert.deepEqual(both.pdu, signed);
        assert.equal(both.eventId, eventIdOf(signed, version));
      }
    }
  });

  const base: UnsignedPdu = {
    type: 'm.room.message',
    room_id: '!room:test.local',
    sender: '@alice:test.local',
    content: { msgtype: 'm.text', body: 'hello' },
    origin_server_ts: 1_700_000_000_000,
    depth: 5,
    prev_events: ['$prev1'],
    auth_events: ['$create', '$power', '$member'],
  };
  const idOf = (event: UnsignedPdu, version = '11') => eventIdOf(hashAndSignEvent(event, version, 'test.local', specKey), version);

  it('derives a deterministic event ID from the redacted event and the content hash', () => {
    const id = idOf(base);
    assert.match(id, /^\$[A-Za-z0-9_-]{43}$/);
    assert.equal(idOf({ ...base }), id);
    assert.equal(idOf(JSON.parse(JSON.stringify(base)) as UnsignedPdu), id, 'key order does not matter');
    assert.notEqual(idOf({ ...base, prev_events: ['$prev2'] }), id);
    assert.notEqual(idOf({ ...base, depth: 6 }), id);
    assert.notEqual(idOf({ ...base, auth_events: ['$create'] }), id);
    assert.notEqual(idOf({ ...base, content: { msgtype: 'm.text', body: 'hellO' } }), id, 'content changes the content hash');
    assert.notEqual(idOf({ ...base, origin_server_ts: base.origin_server_ts + 1 }), id);
    // v10's redaction keeps the top-level origin, v11's does not.
    const withOrigin = { ...base, origin: 'test.local' } as UnsignedPdu;
    assert.notEqual(idOf(withOrigin, '10'), idOf(withOrigin, '11'), 'the room version picks the redaction rules');
  });

  it('leaves the event ID unaffected by signatures and unsigned', () => {
    const signed = hashAndSignEvent(base, '11', 'test.local', specKey);
    const id = eventIdOf(signed, '11');
    assert.equal(eventIdOf({ ...signed, signatures: {} }, '11'), id);
    assert.equal(eventIdOf({ ...signed, signatures: { 'other.example': { 'ed25519:z': 'sig' } } }, '11'), id);
    assert.equal(eventIdOf({ ...signed, unsigned: { age: 10, transaction_id: 't' } }, '11'), id);
    assert.equal(eventIdOf(redactEvent(signed, '11'), '11'), id, 'a redacted copy keeps its ID');
  });

  it('signs the redacted form: the signature survives redaction, the content hash catches changed content', () => {
    const key = verifyKeyOf(SPEC_SEED);
    const signed = hashAndSignEvent({ ...base, unsigned: { age: 1 } }, '11', 'test.local', specKey);
    assert.deepEqual(signed.unsigned, { age: 1 });
    assert.equal(signed.hashes.sha256, contentHash(signed));
    assert.equal(verifyEventSignature(signed, '11', 'test.local', specKey.keyId, key), true);
    assert.equal(verifyEventSignature(redactEvent(signed, '11'), '11', 'test.local', specKey.keyId, key), true);
    const tampered: Pdu = { ...signed, content: { msgtype: 'm.text', body: 'changed' } };
    assert.equal(verifyEventSignature(tampered, '11', 'test.local', specKey.keyId, key), true, 'content is outside the redacted form');
    assert.equal(hasValidContentHash(tampered), false);
    assert.equal(hasValidContentHash(signed), true);
    assert.equal(verifyEventSignature({ ...signed, depth: 7 }, '11', 'test.local', specKey.keyId, key), false);
    assert.equal(verifyEventSignature(signed, '11', 'test.local', specKey.keyId, verifyKeyOf('A'.repeat(43))), false);
  });

  it('refuses to hash content that is not canonical JSON', () => {
    assert.throws(() => hashAndSignEvent({ ...base, content: { n: 0.5 } }, '11', 'test.local', specKey), isBadJson);
  });
});

describe('redaction', () => {
  const topLevel = {
    event_id: '$e', type: 'X', room_id: '!r:s', sender: '@u:s', state_key: '', content: {}, hashes: { sha256: 'h' },
    signatures: { s: { 'ed25519:k': 'sig' } }, depth: 3, prev_events: ['$p'], prev_state: [], auth_events: ['$a'], origin: 's',
    origin_server_ts: 1, membership: 'join', unsigned: { age: 1 }, redacts: '$old', extra: 'x',
  };

  it('keeps the top-level keys of each version', () => {
    const kept = (version: string) => Object.keys(redactEvent(topLevel, version)).sort();
    const v10 = ['auth_events', 'content', 'depth', 'event_id', 'hashes', 'membership', 'origin', 'origin_server_ts', 'prev_events', 'prev_state', 'room_id', 'sender', 'signatures', 'state_key', 'type'];
    assert.deepEqual(kept('10'), v10);
    assert.deepEqual(kept('1'), v10);
    assert.deepEqual(kept('11'), v10.filter((k) => !['membership', 'origin', 'prev_state'].includes(k)));
    assert.deepEqual(kept('12'), kept('11'));
  });

  const member = {
    membership: 'invite', join_authorised_via_users_server: '@admin:s', displayname: 'Al', avatar_url: 'mxc://s/a', is_direct: true, reason: 'r',
    third_party_invite: { display_name: 'a***@b', signed: { mxid: '@u:s', token: 't', signatures: { id: { 'ed25519:0': 's' } } } },
  };
  const powerLevels = {
    ban: 50, events: { 'm.room.name': 50 }, events_default: 0, invite: 0, kick: 50, redact: 50, state_default: 50,
    users: { '@u:s': 100 }, users_default: 0, notifications: { room: 50 },
  };
  const create = { creator: '@u:s', room_version: '10', 'm.federate': false, type: 'm.space', predecessor: { room_id: '!old:s', event_id: '$x' } };
  const { notifications: _n, invite: _i, ...powerLevelsV10 } = powerLevels;
  const { notifications: _n2, ...powerLevelsV11 } = powerLevels;
  const cases: { type: string; content: JsonObject; v10: JsonObject; v11: JsonObject }[] = [
    { type: 'm.room.member', content: member, v10: { membership: 'invite', join_authorised_via_users_server: '@admin:s' }, v11: { membership: 'invite', join_authorised_via_users_server: '@admin:s', third_party_invite: { signed: member.third_party_invite.signed } } },
    { type: 'm.room.member', content: { membership: 'join', third_party_invite: { display_name: 'x' } }, v10: { membership: 'join' }, v11: { membership: 'join' } },
    { type: 'm.room.create', content: create, v10: { creator: '@u:s' }, v11: create },
    { type: 'm.room.join_rules', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: '!sp:s' }], other: 1 }, v10: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: '!sp:s' }] }, v11: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: '!sp:s' }] } },
    { type: 'm.room.power_levels', content: powerLevels, v10: powerLevelsV10, v11: powerLevelsV11 },
    { type: 'm.room.history_visibility', content: { history_visibility: 'shared', other: 1 }, v10: { history_visibility: 'shared' }, v11: { history_visibility: 'shared' } },
    { type: 'm.room.aliases', content: { aliases: ['#a:s'] }, v10: {}, v11: {} },
    { type: 'm.room.redaction', content: { redacts: '$old', reason: 'spam' }, v10: {}, v11: { redacts: '$old' } },
    { type: 'm.room.message', content: { msgtype: 'm.text', body: 'hi' }, v10: {}, v11: {} },
    { type: 'm.room.name', content: { name: 'Room' }, v10: {}, v11: {} },
  ];
  for (const c of cases) {
    it(`keeps the right content of ${c.type} (${Object.keys(c.content).join(', ')})`, () => {
      assert.deepEqual(redactEvent({ ...topLevel, type: c.type, content: c.content }, '10').content, c.v10, 'v10');
      assert.deepEqual(redactEvent({ ...topLevel, type: c.type, content: c.content }, '11').content, c.v11, 'v11');
    });
  }

  it('follows the older versions too', () => {
    assert.deepEqual(redactEvent({ type: 'm.room.aliases', content: { aliases: ['#a:s'] } }, '5').content, { aliases: ['#a:s'] });
    assert.deepEqual(redactEvent({ type: 'm.room.aliases', content: { aliases: ['#a:s'] } }, '6').content, {});
    assert.deepEqual(redactEvent({ type: 'm.room.join_rules', content: { join_rule: 'restricted', allow: [] } }, '7').content, { join_rule: 'restricted' });
    assert.deepEqual(redactEvent({ type: 'm.room.join_rules', content: { join_rule: 'restricted', allow: [] } }, '8').content, { join_rule: 'restricted', allow: [] });
    assert.deepEqual(redactEvent({ type: 'm.room.member', content: member }, '8').content, { membership: 'invite' });
    assert.deepEqual(redactEvent({ type: 'm.room.member', content: member }, '9').content, { membership: 'invite', join_authorised_via_users_server: '@admin:s' });
    assert.throws(() => redactEvent(topLevel, '13'), /room version/);
    assert.throws(() => redactEvent(topLevel, 'org.example.v1'), /room version/);
  });

  it('returns a new object and leaves the event alone', () => {
    const event = { ...topLevel, type: 'm.room.create', content: structuredClone(create) };
    const before = structuredClone(event);
    const redacted = redactEvent(event, '11');
    (redacted.prev_events as string[]).push('$more');
    (redacted.content.predecessor as JsonObject).room_id = '!changed:s';
    assert.deepEqual(event, before);
    assert.equal('unsigned' in redacted, false);
    assert.equal(Object.getPrototypeOf(redactEvent(JSON.parse('{"type":"m.room.create","content":{"__proto__":{"a":1}}}') as JsonObject, '11').content), Object.prototype);
  });
});

describe('the signing key file', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'myelin-signing-key-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const configFor = (overrides: Record<string, unknown>) => parseConfig({ server_name: 'example.org', ...overrides }).config;

  it('is made on first start in Synapse format, mode 0600, beside the SQLite database, and read back unchanged', () => {
    const config = configFor({ database: { name: 'sqlite3', args: { database: join(dir, 'db', 'homeserver.db') } } });
    const path = join(dir, 'db', 'example.org.signing.key');
    assert.equal(signingKeyPathOf(config), path);
    const [first] = loadSigningKeys(config);
    const text = readFileSync(path, 'utf8');
    assert.match(text, /^ed25519 a_[A-Za-z]{4} [A-Za-z0-9+/]{43}\n$/);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(first!.keyId, `ed25519:${text.split(' ')[1]}`);
    assert.match(first!.publicKeyBase64, /^[A-Za-z0-9+/]{43}$/);
    const [again] = loadSigningKeys(config);
    assert.equal(readFileSync(path, 'utf8'), text);
    assert.equal(again!.keyId, first!.keyId);
    assert.equal(again!.publicKeyBase64, first!.publicKeyBase64);
  });

  it('accepts a handwritten Synapse key file', () => {
    const path = join(dir, 'synapse.signing.key');
    writeFileSync(path, `ed25519 a_SyNp ${SPEC_SEED}\r\n\n`);
    const keys = loadSigningKeys(configFor({ signing_key_path: path }));
    assert.equal(keys.length, 1);
    assert.equal(keys[0]!.keyId, 'ed25519:a_SyNp');
    // The spec's seed signs as the spec says.
    assert.equal(signJson({}, 'domain', keys[0]!).signatures.domain!['ed25519:a_SyNp'], 'K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ');
    const two = parseSigningKeyFile(`ed25519 a_one ${SPEC_SEED}\ned25519 auto ${'B'.repeat(43)}=\n`, 'two');
    assert.deepEqual(two.map((k) => k.keyId), ['ed25519:a_one', 'ed25519:auto']);
  });

  it('refuses a malformed file with a start-up error naming the file and line', () => {
    const bad = ['', 'ed25519 a_x', `rsa a_x ${SPEC_SEED}`, `ed25519 a-x ${SPEC_SEED}`, 'ed25519 a_x c2hvcnQ', `ed25519 a_x ${SPEC_SEED} extra`, `ed25519 a_x ${SPEC_SEED}\ned25519 a_x ${SPEC_SEED}`, 'ed25519 a_x !!!!'];
    for (const text of bad) {
      const path = join(dir, 'bad.signing.key');
      writeFileSync(path, text);
      assert.throws(
        () => loadSigningKeys(configFor({ signing_key_path: path })),
        (err: unknown) => err instanceof ConfigError && err.message.includes(path) && err.message.includes('ed25519 <version>') && !err.message.includes(SPEC_SEED),
        JSON.stringify(text),
      );
    }
  });

  it('stops the homeserver from starting when the file is malformed', async () => {
    const path = join(dir, 'broken.signing.key');
    writeFileSync(path, 'not a key\n');
    const config = testConfig(await freePort(), { name: 'sqlite3', args: { database: join(dir, 'broken.db') } }, { signing_key_path: path });
    await assert.rejects(startHomeserver(config), (err: unknown) => err instanceof ConfigError && /broken\.signing\.key, line 1/.test(err.message));
  });

  it('lives in memory with an in-memory database, and under ./data with PostgreSQL', () => {
    const memory = configFor({ database: { name: 'sqlite3', args: { database: ':memory:' } } });
    assert.equal(signingKeyPathOf(memory), undefined);
    assert.notEqual(loadSigningKeys(memory)[0]!.publicKeyBase64, loadSigningKeys(memory)[0]!.publicKeyBase64);
    assert.equal(signingKeyPathOf(configFor({ database: { name: 'psycopg2', args: { database: 'x' } } })), join('data', 'example.org.signing.key'));
    assert.equal(signingKeyPathOf(configFor({ database: { name: 'psycopg2', args: {} }, signing_key_path: '/etc/m/k' })), '/etc/m/k');
    assert.equal(existsSync(join(dir, ':memory:')), false);
  });

  it('default_room_version is 11, may be 10, and anything else stops start-up', () => {
    assert.equal(configFor({}).default_room_version, '11');
    assert.equal(configFor({ default_room_version: '10' }).default_room_version, '10');
    assert.equal(configFor({ default_room_version: 10 }).default_room_version, '10', 'YAML may write it as a number');
    for (const bad of ['12', '9', 'x', 11.5, true]) {
      assert.throws(() => configFor({ default_room_version: bad }), (err: unknown) => err instanceof ConfigError && /default_room_version/.test(err.message), String(bad));
    }
  });
});

describe('GET /_matrix/key/v2/server and /capabilities', () => {
  let server: TestServer;
  let ten: TestServer | undefined;
  before(async () => {
    server = await startTestServer('sqlite');
  });
  after(async () => {
    await server.close();
    await ten?.close();
  });

  type ServerKeys = { server_name: string; valid_until_ts: number; verify_keys: Record<string, { key: string }>; old_verify_keys: JsonObject; signatures: Record<string, Record<string, string>> };

  it('publishes the key, signed by itself, and the same key after a restart', async () => {
    const before = Date.now();
    const res = await server.api.get<ServerKeys>('/_matrix/key/v2/server');
    assert.equal(res.status, 200);
    const body = res.body;
    assert.equal(body.server_name, 'test.local');
    const keyIds = Object.keys(body.verify_keys);
    assert.deepEqual(keyIds, [server.hs.services.signingKey.keyId]);
    const keyId = keyIds[0]!;
    assert.match(keyId, /^ed25519:a_[A-Za-z]{4}$/);
    assert.deepEqual(body.old_verify_keys, {});
    assert.ok(body.valid_until_ts >= before + 23 * 3_600_000 && body.valid_until_ts <= Date.now() + 25 * 3_600_000);
    assert.equal(verifyJsonSignature(body, 'test.local', keyId, body.verify_keys[keyId]!.key), true);
    assert.equal(verifyJsonSignature({ ...body, valid_until_ts: body.valid_until_ts + 1 }, 'test.local', keyId, body.verify_keys[keyId]!.key), false);

    const legacy = await server.api.get<ServerKeys>(`/_matrix/key/v2/server/${encodeURIComponent(keyId)}`);
    assert.equal(legacy.status, 200);
    assert.deepEqual(legacy.body.verify_keys, body.verify_keys);

    await server.restart();
    const after = await server.api.get<ServerKeys>('/_matrix/key/v2/server');
    assert.deepEqual(after.body.verify_keys, body.verify_keys);
  });

  it('advertises m.room_versions with the configured default', async () => {
    const a = await server.api.register('versions');
    const caps = await server.api.get<{ capabilities: Record<string, unknown> }>('/v3/capabilities', { token: a.access_token });
    assert.equal(caps.status, 200);
    assert.deepEqual(caps.body.capabilities['m.room_versions'], { default: '11', available: { '10': 'stable', '11': 'stable' } });

    ten = await startTestServer('sqlite', { default_room_version: '10' });
    const b = await ten.api.register('versions');
    const tenCaps = await ten.api.get<{ capabilities: Record<string, { default: string }> }>('/v3/capabilities', { token: b.access_token });
    assert.equal(tenCaps.body.capabilities['m.room_versions']!.default, '10');
  });
});
