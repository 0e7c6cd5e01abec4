import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

type Sync = {
  next_batch: string;
  account_data: { events: { type: string; content: Record<string, unknown> }[] };
  to_device: { events: { sender: string; type: string; content: Record<string, unknown> }[] };
  device_lists: { changed: string[]; left: string[] };
  device_one_time_keys_count: Record<string, number>;
  device_unused_fallback_key_types: string[];
  errcode?: string;
};

const PASSWORD = 'correct horse battery';

/** Canonical JSON, written here independently of the server's, for signing test keys. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/** An Ed25519 signing key as Matrix clients hold them: public key in unpadded base64. */
function ed25519Key(): { pub: string; sign(object: Record<string, unknown>): string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pub = (publicKey.export({ format: 'der', type: 'spki' }) as Buffer).subarray(12).toString('base64').replace(/=+$/, '');
  const signWith = (key: KeyObject) => (object: Record<string, unknown>) => {
    const { signatures: _s, unsigned: _u, ...rest } = object;
    return sign(null, Buffer.from(canonical(rest)), key).toString('base64').replace(/=+$/, '');
  };
  return { pub, sign: signWith(privateKey) };
}

for (const engine of ENGINES) {
  // Both engines: the stream, filters, push rules, keys and to-device messages are SQL on each engine.
  describe(`sync, account data, filters, push rules, keys and to-device (${engine})`, () => {
    let server: TestServer;
    let alice: { user_id: string; access_token: string; device_id: string };
    let alice2: { user_id: string; access_token: string; device_id: string };
    let bob: { user_id: string; access_token: string; device_id: string };
    const sync = (token: string, query = '') => server.api.get<Sync>(`/v3/sync${query}`, { token });

    before(async () => {
      server = await startTestServer(engine);
      alice = await server.api.register('alice');
      alice2 = await server.api.login('alice');
      bob = await server.api.register('bob');
    });
    after(async () => server.close());

    it('gives an initial sync with push rules, then account data changes incrementally', async () => {
      const first = await sync(alice.access_token);
      assert.equal(first.status, 200);
      const types = first.body.account_data.events.map((e) => e.type);
      assert.deepEqual(types, ['m.push_rules']);
      assert.deepEqual(first.body.to_device.events, []);
      assert.equal(first.body.device_one_time_keys_count.signed_curve25519, 0);

      const put = await server.api.put(`/v3/user/${encodeURIComponent(alice.user_id)}/account_data/org.example.a`, { x: 1 }, { token: alice.access_token });
      assert.equal(put.status, 200);
      const next = await sync(alice.access_token, `?since=${first.body.next_batch}`);
      assert.deepEqual(next.body.account_data.events, [{ type: 'org.example.a', content: { x: 1 } }]);
      assert.notEqual(next.body.next_batch, first.body.next_batch);
      const quiet = await sync(alice.access_token, `?since=${next.body.next_batch}`);
      assert.deepEqual(quiet.body.account_data.events, []);
      assert.equal(quiet.body.next_batch, next.body.next_batch);

      const got = await server.api.get(`/v3/user/${encodeURIComponent(alice.user_id)}/account_data/org.example.a`, { token: alice.access_token });
      assert.deepEqual(got.body, { x: 1 });
      // A fresh initial sync sees the latest content once.
      const again = await sync(alice.access_token);
      assert.deepEqual(
        again.body.account_data.events.filter((e) => e.type === 'org.example.a'),
        [{ type: 'org.example.a', content: { x: 1 } }],
      );
    });

    it('answers account data errors as the spec says', async () => {
      const aliceId = encodeURIComponent(alice.user_id);
      const other = await server.api.put(`/v3/user/${encodeURIComponent(bob.user_id)}/account_data/x.y`, {}, { token: alice.access_token });
      assert.equal(other.status, 403);
      assert.equal(other.body.errcode, 'M_FORBIDDEN');
      const missing = await server.api.get(`/v3/user/${aliceId}/account_data/no.such`, { token: alice.access_token });
      assert.equal(missing.status, 404);
      assert.equal(missing.body.errcode, 'M_NOT_FOUND');
      const notJson = await server.api.put(`/v3/user/${aliceId}/account_data/x.y`, undefined, { token: alice.access_token, rawBody: '{nope', headers: { 'content-type': 'application/json' } });
      assert.equal(notJson.status, 400);
      assert.equal(notJson.body.errcode, 'M_NOT_JSON');
      const array = await server.api.put(`/v3/user/${aliceId}/account_data/x.y`, [1], { token: alice.access_token });
      assert.equal(array.body.errcode, 'M_BAD_JSON');
      const serverOwned = await server.api.put(`/v3/user/${aliceId}/account_data/m.push_rules`, {}, { token: alice.access_token });
      assert.equal(serverOwned.status, 405);
      assert.equal(serverOwned.body.errcode, 'M_BAD_JSON');
      const badRoom = await server.api.put(`/v3/user/${aliceId}/rooms/not-a-room/account_data/x.y`, {}, { token: alice.access_token });
      assert.equal(badRoom.status, 400);
      assert.equal(badRoom.body.errcode, 'M_INVALID_PARAM');
      const room = encodeURIComponent('!room:test.local');
      assert.equal((await server.api.put(`/v3/user/${aliceId}/rooms/${room}/account_data/x.y`, { r: 1 }, { token: alice.access_token })).status, 200);
      assert.deepEqual((await server.api.get(`/v3/user/${aliceId}/rooms/${room}/account_data/x.y`, { token: alice.access_token })).body, { r: 1 });
      const fullyRead = await server.api.put(`/v3/user/${aliceId}/rooms/${room}/account_data/m.fully_read`, {}, { token: alice.access_token });
      assert.equal(fullyRead.status, 405);
    });

    it('stores filters, validates them, and applies them in sync', async () => {
      const path = `/v3/user/${encodeURIComponent(alice.user_id)}/filter`;
      const filter = { account_data: { types: ['org.example.*'], limit: 5 }, room: { timeline: { limit: 10 } } };
      const created = await server.api.post<{ filter_id: string }>(path, filter, { token: alice.access_token });
      assert.equal(created.status, 200);
      const fetched = await server.api.get(`${path}/${created.body.filter_id}`, { token: alice.access_token });
      assert.deepEqual(fetched.body, filter);
      assert.equal((await server.api.get(`${path}/9999`, { token: alice.access_token })).body.errcode, 'M_NOT_FOUND');
      assert.equal((await server.api.get(`${path}/${created.body.filter_id}`, { token: bob.access_token })).status, 403);
      const bad = await server.api.post(path, { account_data: { limit: 'ten' } }, { token: alice.access_token });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.errcode, 'M_BAD_JSON');
      const badRoom = await server.api.post(path, { room: { rooms: ['#alias:test.local'] } }, { token: alice.access_token });
      assert.equal(badRoom.body.errcode, 'M_BAD_JSON');

      const synced = await sync(alice.access_token, `?filter=${created.body.filter_id}`);
      assert.ok(synced.body.account_data.events.every((e) => e.type.startsWith('org.example.')));
      assert.ok(synced.body.account_data.events.length > 0);
      const inline = await sync(alice.access_token, `?filter=${encodeURIComponent(JSON.stringify({ account_data: { not_types: ['*'] } }))}`);
      assert.deepEqual(inline.body.account_data.events, []);
      assert.equal((await sync(alice.access_token, '?filter=%7Bbroken')).body.errcode, 'M_NOT_JSON');
      assert.equal((await sync(alice.access_token, '?filter=424242')).status, 404);
      assert.equal((await sync(alice.access_token, '?since=garbage')).body.errcode, 'M_INVALID_PARAM');
      assert.equal((await sync(alice.access_token, '?set_presence=away')).body.errcode, 'M_INVALID_PARAM');
    });

    it('issues versioned sync tokens, and refuses one it never issued with 400 M_INVALID_PARAM', async () => {
      const first = await sync(alice.access_token);
      assert.match(first.body.next_batch, /^m1_\d+$/);
      const garbage = ['garbage', 'm1_', 'm1_x', 'm2_1', 'm1_1_2', 's', 's-1', 'sx', `m1_${'9'.repeat(30)}`, 'm1_1%00', '%F0%9F%98%80', 'm1_%D9%A1'];
      for (const token of garbage) {
        const res = await sync(alice.access_token, `?since=${token}`);
        assert.equal(res.status, 400, token);
        assert.equal(res.body.errcode, 'M_INVALID_PARAM', token);
        const changes = await server.api.get<{ errcode: string }>(`/v3/keys/changes?from=${token}&to=${first.body.next_batch}`, { token: alice.access_token });
        assert.equal(changes.status, 400, token);
        assert.equal(changes.body.errcode, 'M_INVALID_PARAM', token);
      }
    });

    it('gives filters created at once their own IDs, and an identical filter its existing one', async () => {
      const carol = await server.api.register('carol-filters');
      const path = `/v3/user/${encodeURIComponent(carol.user_id)}/filter`;
      const created = await Promise.all(
        Array.from({ length: 10 }, (_, i) => server.api.post<{ filter_id: string }>(path, { account_data: { limit: i + 1 } }, { token: carol.access_token })),
      );
      assert.deepEqual(created.map((r) => r.status), Array(10).fill(200));
      assert.deepEqual(created.map((r) => Number(r.body.filter_id)).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      const again = await server.api.post<{ filter_id: string }>(path, { account_data: { limit: 3 } }, { token: carol.access_token });
      assert.equal(again.body.filter_id, created[2]!.body.filter_id);
    });

    it('serves the default push rules and lets the user add, order, change and delete rules', async () => {
      const token = alice.access_token;
      const all = await server.api.get<{ global: Record<string, { rule_id: string; default: boolean; enabled: boolean; pattern?: string }[]> }>('/v3/pushrules/', { token });
      assert.equal(all.status, 200);
      assert.equal(all.body.global.override![0]!.rule_id, '.m.rule.master');
      assert.equal(all.body.global.override![0]!.enabled, false);
      assert.equal(all.body.global.content!.find((r) => r.rule_id === '.m.rule.contains_user_name')!.pattern, 'alice');
      assert.deepEqual(
        all.body.global.underride!.map((r) => r.rule_id),
        ['.m.rule.call', '.m.rule.encrypted_room_one_to_one', '.m.rule.room_one_to_one', '.m.rule.message', '.m.rule.encrypted'],
      );

      const before = await sync(token);
      assert.equal((await server.api.put('/v3/pushrules/global/content/cake', { pattern: 'cake', actions: ['notify'] }, { token })).status, 200);
      assert.equal((await server.api.put('/v3/pushrules/global/content/pie?before=cake', { pattern: 'pie', actions: ['notify', 'dont_notify'] }, { token })).status, 200);
      assert.equal((await server.api.put('/v3/pushrules/global/content/tart?after=cake', { pattern: 'tart', actions: [] }, { token })).status, 200);
      const content = await server.api.get<{ content: { rule_id: string; actions: unknown[] }[] }>('/v3/pushrules/global/', { token });
      assert.deepEqual(
        content.body.content.map((r) => r.rule_id),
        ['pie', 'cake', 'tart', '.m.rule.contains_user_name'],
      );
      assert.deepEqual(content.body.content[0]!.actions, ['notify', 'dont_notify']);

      const changed = await sync(token, `?since=${before.body.next_batch}`);
      const pushRules = changed.body.account_data.events.find((e) => e.type === 'm.push_rules');
      assert.ok(pushRules, 'a push rule change reaches sync');

      assert.equal((await server.api.put('/v3/pushrules/global/override/.m.rule.master/enabled', { enabled: true }, { token })).status, 200);
      assert.deepEqual((await server.api.get('/v3/pushrules/global/override/.m.rule.master/enabled', { token })).body, { enabled: true });
      assert.equal((await server.api.put('/v3/pushrules/global/content/cake/actions', { actions: [{ set_tweak: 'sound', value: 'x' }] }, { token })).status, 200);
      assert.deepEqual((await server.api.get('/v3/pushrules/global/content/cake/actions', { token })).body, { actions: [{ set_tweak: 'sound', value: 'x' }] });
      assert.equal((await server.api.delete('/v3/pushrules/global/content/cake', undefined, { token })).status, 200);
      assert.equal((await server.api.get('/v3/pushrules/global/content/cake', { token })).body.errcode, 'M_NOT_FOUND');

      const dotted = await server.api.put('/v3/pushrules/global/override/.mine', { actions: [] }, { token });
      assert.equal(dotted.status, 400);
      const noPattern = await server.api.put('/v3/pushrules/global/content/nopattern', { actions: [] }, { token });
      assert.equal(noPattern.body.errcode, 'M_MISSING_PARAM');
      const anchor = await server.api.put('/v3/pushrules/global/content/x?before=nothere', { pattern: 'x', actions: [] }, { token });
      assert.equal(anchor.status, 400);
      const kind = await server.api.get('/v3/pushrules/global/sideways/x', { token });
      assert.equal(kind.status, 400);
      const sender = await server.api.put(`/v3/pushrules/global/sender/${encodeURIComponent(bob.user_id)}`, { actions: [] }, { token });
      assert.equal(sender.status, 200);
      assert.equal((await server.api.get<{ sender: unknown[] }>('/v3/pushrules/global/', { token })).body.sender.length, 1);
      // Another user still sees the defaults only.
      const bobs = await server.api.get<{ global: { content: unknown[] } }>('/v3/pushrules/', { token: bob.access_token });
      assert.equal(bobs.body.global.content.length, 1);
    });

    it('takes any room and sender rule ID, keeps retired actions as set, and serves one kind with a trailing slash', async () => {
      const frank = await server.api.register('frank-push');
      const token = frank.access_token;
      const alias = encodeURIComponent('#spam:example.com');
      assert.equal((await server.api.put(`/v3/pushrules/global/room/${alias}`, { actions: ['notify'] }, { token })).status, 200);
      assert.equal((await server.api.get<{ rule_id: string }>(`/v3/pushrules/global/room/${alias}`, { token })).body.rule_id, '#spam:example.com');
      assert.equal((await server.api.put('/v3/pushrules/global/sender/not-a-user-id', { actions: ['notify'] }, { token })).status, 200);

      // Retired actions read back as set (the spec: ignored in evaluation; Synapse and sytest: stored).
      for (const [kind, ruleId] of [['room', alias], ['override', '.m.rule.master'], ['underride', '.m.rule.message']]) {
        const actionsPath = `/v3/pushrules/global/${kind}/${ruleId}/actions`;
        assert.equal((await server.api.put(actionsPath, { actions: ['dont_notify'] }, { token })).status, 200);
        assert.deepEqual((await server.api.get(actionsPath, { token })).body, { actions: ['dont_notify'] });
      }
      assert.equal((await server.api.put(`/v3/pushrules/global/room/${alias}/actions`, { actions: ['not_an_action'] }, { token })).status, 400);

      const room = await server.api.get<{ rule_id: string; actions: unknown[] }[]>('/v3/pushrules/global/room/', { token });
      assert.equal(room.status, 200);
      assert.deepEqual(room.body.map((r) => [r.rule_id, r.actions]), [['#spam:example.com', ['dont_notify']]]);
      assert.equal((await server.api.get('/v3/pushrules/global/override/not_a_rule_id', { token })).status, 404);
    });

    it('answers malformed push rule paths with 400 M_UNRECOGNIZED, as sytest expects', async () => {
      const token = alice.access_token;
      const rule = encodeURIComponent('#my_room:example.com');
      const U = 'M_UNRECOGNIZED';
      const cases: [string, string, unknown, string][] = [
        ['GET', '/global', undefined, U],
        ['GET', '/global/room', undefined, U],
        ['GET', '/not_a_scope/', undefined, U],
        ['GET', '/global/not_a_template/', undefined, U],
        ['GET', '/global/override/.m.rule.master/not_an_attr', undefined, U],
        ['PUT', '/', {}, U],
        ['PUT', `/not_a_scope/room/${rule}`, { actions: ['notify'] }, U],
        ['PUT', '/global', {}, U],
        ['PUT', '/global/room', {}, U],
        ['PUT', '/global/room/', { actions: ['notify'] }, U],
        ['PUT', '/global/not_a_template/foo', { actions: ['notify'] }, U],
        ['PUT', `/global/room/${encodeURIComponent('#fo\\o:example.com')}`, { actions: ['notify'] }, 'M_INVALID_PARAM'],
        ['PUT', '/global/override/.m.rule.master/not_an_attr', { enabled: true }, U],
        ['PUT', '/global/override/.m.rule.master/enabled', { enabled: 'not a boolean' }, 'M_BAD_JSON'],
        ['PUT', `/global/room/${rule}`, {}, 'M_MISSING_PARAM'],
        ['DELETE', '/global/room', undefined, U],
        ['DELETE', '/global/room/', undefined, U],
        ['DELETE', '/global/override/.m.rule.master/not_an_attr', undefined, U],
      ];
      // GET /pushrules without the trailing slash is no push-rule path at all: 404, as Synapse and sytest have it.
      const bare = await server.api.get('/v3/pushrules', { token });
      assert.equal(bare.status, 404, JSON.stringify(bare.body));
      assert.equal(bare.body.errcode, U);
      for (const [method, path, body, errcode] of cases) {
        const res = await server.api.request(method, `/v3/pushrules${path}`, body, { token });
        assert.equal(res.status, 400, `${method} ${path}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.errcode, errcode, `${method} ${path}`);
      }
      assert.equal((await server.api.get('/v3/pushrules/global/room')).status, 401, 'authentication comes first');
      assert.equal((await server.api.post('/v3/pushrules/global/room/x', {}, { token })).status, 405);
    });

    it('uploads, queries and claims keys, with fallback keys and device-list changes', async () => {
      const start = await sync(bob.access_token);
      const device = bob.device_id;
      const deviceKeys = {
        user_id: bob.user_id,
        device_id: device,
        algorithms: ['m.olm.v1.curve25519-aes-sha2'],
        keys: { [`curve25519:${device}`]: 'c', [`ed25519:${device}`]: 'e' },
        signatures: { [bob.user_id]: { [`ed25519:${device}`]: 's' } },
      };
      const upload = await server.api.post<{ one_time_key_counts: Record<string, number> }>(
        '/v3/keys/upload',
        {
          device_keys: deviceKeys,
          one_time_keys: { 'signed_curve25519:k1': { key: 'one', signatures: {} }, 'signed_curve25519:k2': { key: 'two', signatures: {} } },
          fallback_keys: { 'signed_curve25519:f1': { key: 'fall', fallback: true, signatures: {} } },
        },
        { token: bob.access_token },
      );
      assert.equal(upload.status, 200);
      assert.equal(upload.body.one_time_key_counts.signed_curve25519, 2);
      const wrongDevice = await server.api.post('/v3/keys/upload', { device_keys: { ...deviceKeys, device_id: 'OTHER' } }, { token: bob.access_token });
      assert.equal(wrongDevice.body.errcode, 'M_INVALID_PARAM');
      const badKey = await server.api.post('/v3/keys/upload', { one_time_keys: { nocolon: 'x' } }, { token: bob.access_token });
      assert.equal(badKey.status, 400);

      const changed = await sync(bob.access_token, `?since=${start.body.next_batch}`);
      assert.deepEqual(changed.body.device_lists.changed, [bob.user_id]);
      assert.deepEqual(changed.body.device_unused_fallback_key_types, ['signed_curve25519']);
      const keyChanges = await server.api.get(`/v3/keys/changes?from=${start.body.next_batch}&to=${changed.body.next_batch}`, { token: bob.access_token });
      assert.deepEqual(keyChanges.body.changed, [bob.user_id]);
      assert.equal((await server.api.get('/v3/keys/changes?from=x&to=y', { token: bob.access_token })).body.errcode, 'M_INVALID_PARAM');

      const query = await server.api.post<{ device_keys: Record<string, Record<string, Record<string, unknown>>> }>(
        '/v3/keys/query',
        { device_keys: { [bob.user_id]: [] } },
        { token: alice.access_token },
      );
      assert.equal(query.body.device_keys[bob.user_id]![device]!.device_id, device);
      // unsigned is always there, {} for a device without a display name (as Synapse sends it).
      assert.deepEqual(query.body.device_keys[bob.user_id]![device]!.unsigned, {});
      assert.equal((await server.api.post('/v3/keys/query', {}, { token: alice.access_token })).body.errcode, 'M_MISSING_PARAM');

      // Three claims of two one-time keys: two distinct keys, then the fallback key.
      const claims = await Promise.all(
        [1, 2, 3].map(() =>
          server.api.post<{ one_time_keys: Record<string, Record<string, Record<string, { key: string }>>> }>(
            '/v3/keys/claim',
            { one_time_keys: { [bob.user_id]: { [device]: 'signed_curve25519' } } },
            { token: alice.access_token },
          ),
        ),
      );
      const keys = claims.map((c) => Object.values(c.body.one_time_keys[bob.user_id]![device]!)[0]!.key).sort();
      assert.deepEqual(keys, ['fall', 'one', 'two']);
      const after = await sync(bob.access_token, `?since=${changed.body.next_batch}`);
      assert.equal(after.body.device_one_time_keys_count.signed_curve25519, 0);
      assert.deepEqual(after.body.device_unused_fallback_key_types, []);
    });

    it('uploads cross-signing keys (UIA only when replacing) and verified signatures', async () => {
      const token = bob.access_token;
      const master1 = ed25519Key();
      const master2 = ed25519Key();
      const selfKey = ed25519Key();
      const key = (usage: string, pub: string) => ({ user_id: bob.user_id, usage: [usage], keys: { [`ed25519:${pub}`]: pub } });
      const signedBy = (object: Record<string, unknown>, signer: { pub: string; sign(o: Record<string, unknown>): string }) => ({
        ...object,
        signatures: { [bob.user_id]: { [`ed25519:${signer.pub}`]: signer.sign(object) } },
      });
      const selfSigning = signedBy(key('self_signing', selfKey.pub), master1);

      const unsigned = await server.api.post('/v3/keys/device_signing/upload', { master_key: key('master', master1.pub), self_signing_key: key('self_signing', selfKey.pub) }, { token });
      assert.equal(unsigned.status, 400);
      assert.equal(unsigned.body.errcode, 'M_INVALID_SIGNATURE');
      const first = await server.api.post('/v3/keys/device_signing/upload', { master_key: key('master', master1.pub), self_signing_key: selfSigning }, { token });
      assert.equal(first.status, 200);
      // The same keys again need no re-authentication.
      assert.equal((await server.api.post('/v3/keys/device_signing/upload', { master_key: key('master', master1.pub) }, { token })).status, 200);

      // The spec's cross_signing.yaml lists no 401, so this UIA challenge is read without the schema check.
      const challenge = await fetch(`${server.url}/_matrix/client/v3/keys/device_signing/upload`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ master_key: key('master', master2.pub) }),
      });
      assert.equal(challenge.status, 401);
      const uia = (await challenge.json()) as { session: string; flows: { stages: string[] }[] };
      assert.deepEqual(uia.flows, [{ stages: ['m.login.password'] }]);
      const authed = await server.api.post(
        '/v3/keys/device_signing/upload',
        {
          master_key: key('master', master2.pub),
          self_signing_key: signedBy(key('self_signing', selfKey.pub), master2),
          auth: { type: 'm.login.password', session: uia.session, identifier: { type: 'm.id.user', user: 'bob' }, password: PASSWORD },
        },
        { token },
      );
      assert.equal(authed.status, 200);
      const wrongUsage = await server.api.post('/v3/keys/device_signing/upload', { self_signing_key: key('master', 'X') }, { token });
      assert.equal(wrongUsage.body.errcode, 'M_INVALID_PARAM');

      // Sign the device's keys (as stored) with the self-signing key.
      const stored = await server.api.post<{ device_keys: Record<string, Record<string, Record<string, unknown>>> }>(
        '/v3/keys/query',
        { device_keys: { [bob.user_id]: [bob.device_id] } },
        { token },
      );
      const device = stored.body.device_keys[bob.user_id]![bob.device_id]!;
      const good = { ...device, signatures: { [bob.user_id]: { [`ed25519:${selfKey.pub}`]: selfKey.sign(device) } } };
      const forged = { ...device, signatures: { [bob.user_id]: { [`ed25519:${selfKey.pub}`]: master1.sign(device) } } };
      const altered = { ...device, keys: { 'ed25519:other': 'x' }, signatures: { [bob.user_id]: { [`ed25519:${selfKey.pub}`]: selfKey.sign({ ...device, keys: { 'ed25519:other': 'x' } }) } } };
      const bad = await server.api.post<{ failures: Record<string, Record<string, { errcode: string }>> }>(
        '/v3/keys/signatures/upload',
        { [bob.user_id]: { [bob.device_id]: forged, NOSUCHDEVICE: good } },
        { token },
      );
      assert.equal(bad.body.failures[bob.user_id]![bob.device_id]!.errcode, 'M_INVALID_SIGNATURE');
      assert.equal(bad.body.failures[bob.user_id]!.NOSUCHDEVICE!.errcode, 'M_NOT_FOUND');
      const mismatch = await server.api.post<{ failures: Record<string, Record<string, { errcode: string }>> }>('/v3/keys/signatures/upload', { [bob.user_id]: { [bob.device_id]: altered } }, { token });
      assert.equal(mismatch.body.failures[bob.user_id]![bob.device_id]!.errcode, 'M_INVALID_SIGNATURE');
      const ok = await server.api.post<{ failures: Record<string, unknown> }>('/v3/keys/signatures/upload', { [bob.user_id]: { [bob.device_id]: good } }, { token });
      assert.deepEqual(ok.body.failures, {});

      const query = await server.api.post<{ device_keys: Record<string, Record<string, { signatures: Record<string, Record<string, string>> }>>; master_keys: Record<string, { keys: Record<string, string> }> }>(
        '/v3/keys/query',
        { device_keys: { [bob.user_id]: [] } },
        { token: alice.access_token },
      );
      assert.equal(query.body.device_keys[bob.user_id]![bob.device_id]!.signatures[bob.user_id]![`ed25519:${selfKey.pub}`], good.signatures[bob.user_id]![`ed25519:${selfKey.pub}`]);
      assert.deepEqual(query.body.master_keys[bob.user_id]!.keys, { [`ed25519:${master2.pub}`]: master2.pub });
    });

    it('takes cross-signing keys under /unstable too, where older clients upload them', async () => {
      const erin = await server.api.register('erin-unstable');
      const master = ed25519Key();
      const masterKey = { user_id: erin.user_id, usage: ['master'], keys: { [`ed25519:${master.pub}`]: master.pub } };
      const res = await server.api.post('/_matrix/client/unstable/keys/device_signing/upload', { master_key: masterKey }, { token: erin.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const query = await server.api.post<{ master_keys: Record<string, { keys: Record<string, string> }> }>('/v3/keys/query', { device_keys: { [erin.user_id]: [] } }, { token: erin.access_token });
      // Served exactly as uploaded: no empty `signatures` added (sytest's "Can upload self-signing keys" compares it whole).
      assert.deepEqual(query.body.master_keys[erin.user_id], masterKey);
    });

    it('delivers to-device messages once per transaction ID and deletes them when acknowledged', async () => {
      const target = await sync(alice2.access_token);
      const body = { messages: { [alice.user_id]: { [alice2.device_id]: { hello: 1 } } } };
      assert.equal((await server.api.put('/v3/sendToDevice/org.example.hi/txn1', body, { token: bob.access_token })).status, 200);
      assert.equal((await server.api.put('/v3/sendToDevice/org.example.hi/txn1', body, { token: bob.access_token })).status, 200);
      const got = await sync(alice2.access_token, `?since=${target.body.next_batch}`);
      assert.deepEqual(got.body.to_device.events, [{ sender: bob.user_id, type: 'org.example.hi', content: { hello: 1 } }]);
      // Until acknowledged by a later since, the same since gets them again; afterwards they are gone.
      const retry = await sync(alice2.access_token, `?since=${target.body.next_batch}`);
      assert.equal(retry.body.to_device.events.length, 1);
      const acked = await sync(alice2.access_token, `?since=${got.body.next_batch}`);
      assert.deepEqual(acked.body.to_device.events, []);
      const stale = await sync(alice2.access_token, `?since=${target.body.next_batch}`);
      assert.deepEqual(stale.body.to_device.events, []);

      // '*' reaches every device of the user; the other device of the same user does not see it twice.
      const star = await sync(alice.access_token);
      await server.api.put('/v3/sendToDevice/org.example.all/txn2', { messages: { [alice.user_id]: { '*': { all: true } } } }, { token: bob.access_token });
      const one = await sync(alice.access_token, `?since=${star.body.next_batch}`);
      assert.deepEqual(one.body.to_device.events.map((e) => e.type), ['org.example.all']);
      const bad = await server.api.put('/v3/sendToDevice/org.example.hi/txn3', { messages: { nobody: {} } }, { token: bob.access_token });
      assert.equal(bad.body.errcode, 'M_INVALID_PARAM');
      const missing = await server.api.put('/v3/sendToDevice/org.example.hi/txn4', {}, { token: bob.access_token });
      assert.equal(missing.body.errcode, 'M_MISSING_PARAM');
    });

    it('forgets sendToDevice transaction IDs older than a day when maintenance prunes', async () => {
      const db = server.hs.services.store.db.kysely;
      const body = { messages: { [alice.user_id]: { [alice2.device_id]: { p: 1 } } } };
      for (const txn of ['prune-old', 'prune-new']) assert.equal((await server.api.put(`/v3/sendToDevice/org.example.p/${txn}`, body, { token: bob.access_token })).status, 200);
      await db.updateTable('to_device_txns').set({ created_ts: Date.now() - 25 * 3_600_000 }).where('txn_id', '=', 'prune-old').execute();
      await server.hs.services.toDevice.prune();
      const left = await db.selectFrom('to_device_txns').select('txn_id').where('user_id', '=', bob.user_id).where('txn_id', 'in', ['prune-old', 'prune-new']).execute();
      assert.deepEqual(left.map((r) => r.txn_id), ['prune-new']);
    });

    it('wakes a waiting sync when a to-device message arrives, and returns after the timeout otherwise', async () => {
      const base = await sync(alice2.access_token);
      let t = Date.now();
      const idle = await sync(alice2.access_token, `?since=${base.body.next_batch}&timeout=300`);
      assert.ok(Date.now() - t >= 280, 'an idle sync waits for its timeout');
      assert.equal(idle.body.next_batch, base.body.next_batch);
      t = Date.now();
      const waiting = sync(alice2.access_token, `?since=${base.body.next_batch}&timeout=20000`);
      await until(() => server.hs.services.notifier.waiting === 1, 'the sync to wait');
      await server.api.put('/v3/sendToDevice/org.example.wake/w1', { messages: { [alice.user_id]: { [alice2.device_id]: { n: 2 } } } }, { token: bob.access_token });
      const woke = await waiting;
      assert.ok(Date.now() - t < 2000);
      assert.equal(woke.body.to_device.events[0]!.type, 'org.example.wake');
    });

    it('forgets the keys and queued messages of a deleted device and reports the change', async () => {
      const token = alice.access_token;
      const victim = await server.api.login('alice');
      await server.api.post(
        '/v3/keys/upload',
        { one_time_keys: { 'signed_curve25519:z': 'zz' }, device_keys: { user_id: alice.user_id, device_id: victim.device_id, algorithms: [], keys: {}, signatures: {} } },
        { token: victim.access_token },
      );
      await server.api.put('/v3/sendToDevice/org.example.x/t9', { messages: { [alice.user_id]: { [victim.device_id]: { a: 1 } } } }, { token: bob.access_token });
      const start = await sync(token);
      const first = await server.api.delete(`/v3/devices/${victim.device_id}`, {}, { token });
      const session = (first.body as { session: string }).session;
      const del = await server.api.delete(
        `/v3/devices/${victim.device_id}`,
        { auth: { type: 'm.login.password', session, identifier: { type: 'm.id.user', user: 'alice' }, password: PASSWORD } },
        { token },
      );
      assert.equal(del.status, 200);
      const next = await sync(token, `?since=${start.body.next_batch}`);
      assert.deepEqual(next.body.device_lists.changed, [alice.user_id]);
      const query = await server.api.post<{ device_keys: Record<string, Record<string, unknown>> }>('/v3/keys/query', { device_keys: { [alice.user_id]: [victim.device_id] } }, { token });
      assert.deepEqual(query.body.device_keys[alice.user_id], {});
      const claim = await server.api.post<{ one_time_keys: Record<string, unknown> }>('/v3/keys/claim', { one_time_keys: { [alice.user_id]: { [victim.device_id]: 'signed_curve25519' } } }, { token });
      assert.deepEqual(claim.body.one_time_keys, {});
    });

    it("puts the user in their own device_lists.changed when a new device logs in, and wakes a waiting sync", async () => {
      const dave = await server.api.register('dave-devices');
      const start = await sync(dave.access_token);
      const waiting = sync(dave.access_token, `?since=${start.body.next_batch}&timeout=20000`);
      await until(() => server.hs.services.notifier.waiting === 1, 'the sync to wait');
      const t = Date.now();
      const second = await server.api.login('dave-devices');
      const woke = await waiting;
      assert.ok(Date.now() - t < 2000, 'the login wakes the waiting sync');
      assert.deepEqual(woke.body.device_lists.changed, [dave.user_id]);
      const keyChanges = await server.api.get(`/v3/keys/changes?from=${start.body.next_batch}&to=${woke.body.next_batch}`, { token: dave.access_token });
      assert.deepEqual(keyChanges.body.changed, [dave.user_id]);

      // Logging in again with an existing device ID creates no device: no change.
      const quiet = await sync(dave.access_token, `?since=${woke.body.next_batch}`);
      const again = await server.api.post('/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'dave-devices' }, password: PASSWORD, device_id: second.device_id });
      assert.equal(again.status, 200);
      const after = await sync(dave.access_token, `?since=${quiet.body.next_batch}`);
      assert.deepEqual(after.body.device_lists.changed, []);
    });

    it('leaves no message behind for a device deleted while messages are sent to it', async () => {
      const db = server.hs.services.store.db.kysely;
      for (let round = 0; round < 10; round++) {
        const victim = await server.api.login('alice');
        const sends = Array.from({ length: 5 }, (_, i) =>
          server.api.put(`/v3/sendToDevice/org.example.race/r${round}-${i}`, { messages: { [alice.user_id]: { [victim.device_id]: { i } } } }, { token: bob.access_token }),
        );
        const results = await Promise.all([...sends, server.api.post('/v3/logout', {}, { token: victim.access_token })]);
        assert.deepEqual(results.map((r) => r.status), Array(6).fill(200));
        const left = await db.selectFrom('to_device_inbox').select('device_id').where('user_id', '=', alice.user_id).where('device_id', '=', victim.device_id).execute();
        assert.equal(left.length, 0, `round ${round}`);
      }
    });

    it('loses no change when many writes race with syncing', async () => {
      const token = bob.access_token;
      const path = `/v3/user/${encodeURIComponent(bob.user_id)}/account_data`;
      let since = (await sync(token)).body.next_batch;
      const seen = new Set<string>();
      const writes = Promise.all(Array.from({ length: 30 }, (_, i) => server.api.put(`${path}/org.example.race${i}`, { i }, { token })));
      let done = false;
      void writes.then(() => (done = true));
      // Incremental syncs while the writes commit in any order: every change must show up exactly in some batch.
      while (!done || seen.size < 30) {
        const res = await sync(token, `?since=${since}&timeout=${done ? 0 : 200}`);
        for (const e of res.body.account_data.events) if (e.type.startsWith('org.example.race')) seen.add(e.type);
        since = res.body.next_batch;
        if (done && seen.size < 30) {
          const last = await sync(token, `?since=${since}`);
          for (const e of last.body.account_data.events) if (e.type.startsWith('org.example.race')) seen.add(e.type);
          break;
        }
      }
      for (const res of await writes) assert.equal(res.status, 200);
      assert.equal(seen.size, 30);
    });

    it('keeps next_batch tokens valid across a restart', async () => {
      const before = await sync(bob.access_token);
      await server.restart();
      // fetch may hold a keep-alive socket to the stopped process; an idempotent request flushes it.
      await server.api.get('/versions').catch(() => undefined);
      await server.api.put(`/v3/user/${encodeURIComponent(bob.user_id)}/account_data/org.example.r`, { r: 1 }, { token: bob.access_token });
      const after = await sync(bob.access_token, `?since=${before.body.next_batch}`);
      assert.deepEqual(after.body.account_data.events, [{ type: 'org.example.r', content: { r: 1 } }]);
    });
  });
}
