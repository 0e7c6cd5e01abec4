import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from './helpers/server.js';

/**
 * Client-state requests are parsed at the edge: a bad field gets M_MISSING_PARAM (a top-level field), M_BAD_JSON or
 * M_INVALID_PARAM naming it, and no field of the wrong JSON type makes any route answer 5xx.
 * Input parsing touches no storage, so SQLite is enough here.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const ALGORITHM = 'm.megolm_backup.v1.curve25519-aes-sha2';
const session = { first_message_index: 1, forwarded_count: 0, is_verified: false, session_data: { ciphertext: 'c', mac: 'm' } };
/** One value of each JSON type: whatever a field expects, most of these are wrong. */
const WRONG: Json[] = [null, 7, -1.5, 'text', true, [], [1, 'x'], {}, { a: { b: 1 } }];

/** Every path into a JSON value's objects and arrays, the value's own fields first. */
function paths(value: Json, prefix: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(value)) return value.flatMap((item, i) => [[...prefix, i], ...paths(item, [...prefix, i])]);
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([key, item]) => [[...prefix, key], ...paths(item, [...prefix, key])]);
  return [];
}

function replaced(value: Json, path: (string | number)[], by: Json): Json {
  const copy = structuredClone(value);
  let at = copy as Record<string | number, Json>;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, Json>;
  at[path[path.length - 1]!] = by;
  return copy;
}

describe('typed input at the edge: client state (sqlite)', () => {
  let server: TestServer;
  let token: string;
  let me: string;
  let device: string;
  let backupVersion: string;

  /** A request by raw fetch: the status and body as the server sent them, nothing checked on the way. */
  async function send(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${server.url}/_matrix/client${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
  }

  async function refused(method: string, path: string, body: unknown, errcode: string, field: string): Promise<void> {
    const res = await send(method, path, body);
    const what = `${method} ${path} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`;
    assert.equal(res.status, 400, what);
    assert.equal(res.body.errcode, errcode, what);
    assert.ok(String(res.body.error).includes(field), `the error names ${field}: ${what}`);
  }

  before(async () => {
    server = await startTestServer('sqlite');
    const alice = await server.api.register('typed-alice');
    token = alice.access_token;
    me = alice.user_id;
    device = alice.device_id;
    const created = await server.api.post<{ version: string }>('/v3/room_keys/version', { algorithm: ALGORITHM, auth_data: { public_key: 'pk' } }, { token });
    backupVersion = created.body.version;
  });
  after(async () => server.close());

  it('keys/upload names the missing, mistyped and invalid field', async () => {
    const deviceKeys = { user_id: me, device_id: device, algorithms: ['m.olm.v1.curve25519-aes-sha2'], keys: { [`ed25519:${device}`]: 'e' }, signatures: { [me]: { [`ed25519:${device}`]: 's' } } };
    const { keys: _keys, ...withoutKeys } = deviceKeys;
    await refused('POST', '/v3/keys/upload', { device_keys: withoutKeys }, 'M_BAD_JSON', 'device_keys.keys');
    await refused('POST', '/v3/keys/upload', { device_keys: { ...deviceKeys, user_id: 5 } }, 'M_BAD_JSON', 'device_keys.user_id');
    await refused('POST', '/v3/keys/upload', { one_time_keys: { 'signed_curve25519:A': 5 } }, 'M_BAD_JSON', 'one_time_keys.signed_curve25519:A');
    await refused('POST', '/v3/keys/upload', { one_time_keys: { 'signed_curve25519:A': { signatures: {} } } }, 'M_BAD_JSON', 'one_time_keys.signed_curve25519:A.key');
    await refused('POST', '/v3/keys/upload', { fallback_keys: { nocolon: 'x' } }, 'M_INVALID_PARAM', 'fallback_keys.nocolon');
    // Signed objects are stored as sent: other fields kept, in the sender's order.
    const signed = { signatures: { [me]: { 'ed25519:X': 's' } }, key: 'one', fallback: true };
    assert.equal((await send('POST', '/v3/keys/upload', { fallback_keys: { 'signed_curve25519:F': signed } })).status, 200);
    const claimed = await send('POST', '/v3/keys/claim', { one_time_keys: { [me]: { [device]: 'signed_curve25519' } } });
    const key = (claimed.body.one_time_keys as Record<string, Record<string, Record<string, unknown>>>)[me]![device]!['signed_curve25519:F'];
    assert.equal(JSON.stringify(key), JSON.stringify(signed));
  });

  it('keys/query, keys/claim and keys/changes name the field', async () => {
    await refused('POST', '/v3/keys/query', {}, 'M_MISSING_PARAM', 'device_keys');
    await refused('POST', '/v3/keys/query', { device_keys: { [me]: 'all' } }, 'M_BAD_JSON', `device_keys.${me}`);
    await refused('POST', '/v3/keys/query', { device_keys: { nobody: [] } }, 'M_INVALID_PARAM', 'device_keys.nobody');
    await refused('POST', '/v3/keys/claim', { one_time_keys: { [me]: { [device]: 1 } } }, 'M_BAD_JSON', `one_time_keys.${me}.${device}`);
    await refused('GET', '/v3/keys/changes?from=m1_1', undefined, 'M_MISSING_PARAM', 'to');
  });

  it('room_keys names the missing, mistyped and invalid field', async () => {
    const room = encodeURIComponent('!r:test.local');
    const path = `/v3/room_keys/keys/${room}/s1?version=${backupVersion}`;
    const { is_verified: _v, ...unverified } = session;
    await refused('PUT', path, unverified, 'M_MISSING_PARAM', 'is_verified');
    await refused('PUT', path, { ...session, first_message_index: 'x' }, 'M_BAD_JSON', 'first_message_index');
    await refused('PUT', path, { ...session, forwarded_count: -1 }, 'M_INVALID_PARAM', 'forwarded_count');
    await refused('PUT', `/v3/room_keys/keys?version=${backupVersion}`, { rooms: { '!r:test.local': { sessions: { s1: { ...session, session_data: 'x' } } } } }, 'M_BAD_JSON', 'rooms.!r:test.local.sessions.s1.session_data');
    await refused('PUT', `/v3/room_keys/keys/${room}/s1`, session, 'M_MISSING_PARAM', 'version');
    await refused('POST', '/v3/room_keys/version', { algorithm: 'm.other', auth_data: {} }, 'M_INVALID_PARAM', 'algorithm');
    await refused('PUT', `/v3/room_keys/version/${backupVersion}`, { algorithm: ALGORITHM, auth_data: {}, version: 1 }, 'M_BAD_JSON', 'version');
    assert.equal((await send('PUT', path, session)).status, 200);
  });

  it('sendToDevice names the missing, mistyped and invalid field', async () => {
    await refused('PUT', '/v3/sendToDevice/org.example.t/t1', {}, 'M_MISSING_PARAM', 'messages');
    await refused('PUT', '/v3/sendToDevice/org.example.t/t2', { messages: { [me]: { [device]: 'hello' } } }, 'M_BAD_JSON', `messages.${me}.${device}`);
    await refused('PUT', '/v3/sendToDevice/org.example.t/t3', { messages: { nobody: {} } }, 'M_INVALID_PARAM', 'messages.nobody');
  });

  it('push rules name the missing, mistyped and invalid field, in the body and the query', async () => {
    const rule = '/v3/pushrules/global/override/typed';
    await refused('PUT', rule, {}, 'M_MISSING_PARAM', 'actions');
    await refused('PUT', rule, { actions: ['notify'], conditions: [{ key: 'type' }] }, 'M_BAD_JSON', 'conditions.0.kind');
    await refused('PUT', rule, { actions: [{ value: 1 }] }, 'M_BAD_JSON', 'actions.0.set_tweak');
    await refused('PUT', rule, { actions: ['notify', 5] }, 'M_BAD_JSON', 'actions.1');
    await refused('PUT', rule, { actions: ['notify'], conditions: [{ kind: 'event_match', value: {} }] }, 'M_BAD_JSON', 'conditions.0.value');
    await refused('PUT', rule, { actions: ['bogus'] }, 'M_INVALID_PARAM', 'actions.0');
    await refused('PUT', '/v3/pushrules/global/content/typed', { actions: [], pattern: 5 }, 'M_BAD_JSON', 'pattern');
    await refused('PUT', '/v3/pushrules/global/content/typed', { actions: [] }, 'M_MISSING_PARAM', 'pattern');
    await refused('PUT', '/v3/pushrules/global/override/.m.rule.master/enabled', {}, 'M_MISSING_PARAM', 'enabled');
    await refused('PUT', '/v3/pushrules/global/override/.m.rule.master/actions', { actions: 'notify' }, 'M_BAD_JSON', 'actions');
    // The path is checked first: a malformed one is M_UNRECOGNIZED whatever the body.
    assert.equal((await send('PUT', '/v3/pushrules/global/sideways/typed', { actions: 5 })).body.errcode, 'M_UNRECOGNIZED');
    // Tweak objects and conditions are stored as sent, extra fields included.
    const tweak = { value: 'x', set_tweak: 'sound', extra: [1] };
    assert.equal((await send('PUT', `${rule}?before=nothere`, { actions: [tweak] })).body.errcode, 'M_UNKNOWN');
    assert.equal((await send('PUT', rule, { actions: [tweak], conditions: [{ pattern: 'm.*', kind: 'event_match', key: 'type' }] })).status, 200);
    const stored = await send('GET', rule);
    assert.equal(JSON.stringify(stored.body.actions), JSON.stringify([tweak]));
    assert.equal(JSON.stringify(stored.body.conditions), JSON.stringify([{ pattern: 'm.*', kind: 'event_match', key: 'type' }]));
  });

  it('presence and account data name the field', async () => {
    const status = `/v3/presence/${encodeURIComponent(me)}/status`;
    await refused('PUT', status, {}, 'M_MISSING_PARAM', 'presence');
    await refused('PUT', status, { presence: 'online', status_msg: 5 }, 'M_BAD_JSON', 'status_msg');
    await refused('PUT', status, { presence: 'online', status_msg: 'x'.repeat(1025) }, 'M_INVALID_PARAM', 'status_msg');
    // Account data is any JSON object, kept as sent, a "__proto__" key included.
    const path = `/v3/user/${encodeURIComponent(me)}/account_data/org.example.proto`;
    const raw = '{"__proto__":{"x":1},"b":2}';
    const put = await fetch(`${server.url}/_matrix/client${path}`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: raw });
    assert.equal(put.status, 200);
    assert.equal(await (await fetch(`${server.url}/_matrix/client${path}`, { headers: { authorization: `Bearer ${token}` } })).text(), raw);
  });

  it('sync query and filters name the field', async () => {
    await refused('GET', '/v3/sync?timeout=soon', undefined, 'M_INVALID_PARAM', 'timeout');
    await refused('GET', '/v3/sync?full_state=yes', undefined, 'M_INVALID_PARAM', 'full_state');
    await refused('GET', '/v3/sync?set_presence=away', undefined, 'M_INVALID_PARAM', 'set_presence');
    await refused('GET', `/v3/sync?filter=${encodeURIComponent('{"account_data":{"limit":"ten"}}')}`, undefined, 'M_BAD_JSON', 'account_data.limit');
    // An empty parameter counts as absent.
    assert.equal((await send('GET', '/v3/sync?since=&timeout=&filter=')).status, 200);
    const filters = `/v3/user/${encodeURIComponent(me)}/filter`;
    await refused('POST', filters, { room: { timeline: { limit: 'ten' } } }, 'M_BAD_JSON', 'room.timeline.limit');
    await refused('POST', filters, { presence: { senders: ['nobody'] } }, 'M_BAD_JSON', 'presence.senders.0');
  });

  describe('no field of the wrong JSON type makes a route answer 5xx', () => {
    let txn = 0;
    const bodies = (): [string, string, Json][] => {
      const room = '!room:test.local';
      const meKey = me;
      return [
        ['PUT', `/v3/user/${encodeURIComponent(me)}/account_data/org.example.t`, { a: { b: [1] } }],
        ['PUT', `/v3/user/${encodeURIComponent(me)}/rooms/${encodeURIComponent(room)}/account_data/org.example.t`, { a: 1 }],
        ['POST', `/v3/user/${encodeURIComponent(me)}/filter`, { event_format: 'client', account_data: { types: ['x.*'], limit: 5, senders: [me] }, room: { rooms: [room], include_leave: false, timeline: { limit: 3, contains_url: true, not_rooms: [room] } } }],
        ['PUT', `/v3/presence/${encodeURIComponent(me)}/status`, { presence: 'online', status_msg: 'hi' }],
        ['PUT', '/v3/pushrules/global/override/fuzz', { actions: ['notify', { set_tweak: 'sound', value: 'x' }], conditions: [{ kind: 'event_match', key: 'type', pattern: 'm.*', value: 1 }] }],
        ['PUT', '/v3/pushrules/global/content/fuzz', { actions: ['notify'], pattern: 'cake' }],
        ['PUT', '/v3/pushrules/global/override/.m.rule.master/enabled', { enabled: false }],
        ['PUT', '/v3/pushrules/global/override/.m.rule.master/actions', { actions: ['dont_notify'] }],
        ['POST', '/v3/room_keys/version', { algorithm: ALGORITHM, auth_data: { public_key: 'pk' } }],
        ['PUT', `/v3/room_keys/version/${backupVersion}`, { algorithm: ALGORITHM, auth_data: { public_key: 'pk' }, version: backupVersion }],
        ['PUT', `/v3/room_keys/keys?version=${backupVersion}`, { rooms: { [room]: { sessions: { s1: session } } } }],
        ['PUT', `/v3/room_keys/keys/${encodeURIComponent(room)}?version=${backupVersion}`, { sessions: { s1: session } }],
        ['PUT', `/v3/room_keys/keys/${encodeURIComponent(room)}/s1?version=${backupVersion}`, session],
        ['PUT', '/v3/sendToDevice/org.example.t/TXN', { messages: { [meKey]: { [device]: { a: 1 }, '*': { b: 2 } } } }],
        [
          'POST',
          '/v3/keys/upload',
          {
            device_keys: { user_id: me, device_id: device, algorithms: ['a'], keys: { [`ed25519:${device}`]: 'e' }, signatures: { [me]: { [`ed25519:${device}`]: 's' } }, unsigned: {} },
            one_time_keys: { 'signed_curve25519:O': { key: 'k', signatures: { [me]: { 'ed25519:X': 's' } } }, 'curve25519:P': 'plain' },
            fallback_keys: { 'signed_curve25519:F': { key: 'f', fallback: true } },
          },
        ],
        ['POST', '/v3/keys/query', { device_keys: { [meKey]: [device] }, timeout: 10 }],
        ['POST', '/v3/keys/claim', { one_time_keys: { [meKey]: { [device]: 'signed_curve25519' } }, timeout: 10 }],
        ['POST', '/v3/keys/device_signing/upload', { master_key: { user_id: me, usage: ['master'], keys: { 'ed25519:M': 'M' } }, self_signing_key: { user_id: me, usage: ['self_signing'], keys: { 'ed25519:S': 'S' }, signatures: { [me]: { 'ed25519:M': 'x' } } }, auth: { type: 'm.login.password', session: 'x' } }],
        ['POST', '/v3/keys/signatures/upload', { [meKey]: { [device]: { user_id: me, device_id: device, keys: { [`ed25519:${device}`]: 'e' }, signatures: { [me]: { 'ed25519:X': 's' } } } } }],
      ];
    };

    it('bodies: each field in turn replaced by each JSON type, and each body replaced whole', async () => {
      for (const [method, path, body] of bodies()) {
        const variants: Json[] = [body, ...WRONG, ...paths(body).flatMap((p) => WRONG.map((by) => replaced(body, p, by)))];
        for (const variant of variants) {
          const target = path.replace('TXN', `fuzz-${txn++}`);
          const res = await send(method, target, variant);
          const what = `${method} ${target} ${JSON.stringify(variant)}: ${res.status} ${JSON.stringify(res.body)}`;
          assert.ok(res.status < 500, what);
          if (res.status >= 400) assert.equal(typeof res.body.errcode, 'string', what);
        }
      }
    });

    it('queries: each parameter in turn empty, not a number, negative, huge or JSON', async () => {
      const queries: [string, string, Record<string, string>][] = [
        ['GET', '/v3/sync', { since: 'm1_1', timeout: '0', full_state: 'false', set_presence: 'offline', filter: '{}' }],
        ['GET', '/v3/keys/changes', { from: 'm1_0', to: 'm1_1' }],
        ['GET', '/v3/room_keys/keys', { version: backupVersion }],
        ['DELETE', '/v3/room_keys/keys/x/y', { version: backupVersion }],
        ['PUT', '/v3/pushrules/global/override/q', { before: '.m.rule.master', after: '.m.rule.master' }],
        ['GET', '/v3/thirdparty/location', { alias: '#a:b' }],
        ['GET', '/v3/thirdparty/user', { userid: '@a:b' }],
      ];
      const odd = ['', 'x', '-1', '1.5', '99999999999999999999', '{"a":1}', '[1]', 'null', 'true'];
      for (const [method, path, params] of queries) {
        const body = method === 'PUT' ? { actions: ['notify'] } : undefined;
        for (const name of Object.keys(params)) {
          for (const value of odd) {
            const query = new URLSearchParams({ ...params, [name]: value }).toString();
            const res = await send(method, `${path}?${query}`, body);
            const what = `${method} ${path}?${query}: ${res.status} ${JSON.stringify(res.body)}`;
            assert.ok(res.status < 500, what);
            if (res.status >= 400) assert.equal(typeof res.body.errcode, 'string', what);
          }
        }
      }
    });
  });
});
