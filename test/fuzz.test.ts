import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeRequest, fuzzEngine, type FuzzRequest } from './helpers/fuzz.js';
import { ENGINES } from './helpers/server.js';

/** bench/fuzz.ts in small: the same generator, a fixed seed, a few thousand requests per engine. */
const REQUESTS = 3000;
const SEED = 20261201;
/**
 * bench/fuzz.ts holds the server to 100 ms. Here another test file runs beside this one on the same
 * two cores, so the bound only has to catch a stall (the star-bomb filter froze the server for seconds).
 */
const MAX_VERSIONS_MS = 500;

const V3 = '/_matrix/client/v3';
const json = (value: unknown) => Buffer.from(JSON.stringify(value));

/** Requests the security review found answering 5xx or freezing the server; sent before the random ones. */
function knownOffenders(token: string, userId: string): FuzzRequest[] {
  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const user = encodeURIComponent(userId);
  const backupKey = { first_message_index: 0, forwarded_count: 0, is_verified: false, session_data: { a: 1 } };
  return [
    // Item 1: a filter glob that made the server backtrack.
    ...['one', 'two', 'three'].map((n) => ({ method: 'PUT', path: `${V3}/user/${user}/account_data/org.example.${n.repeat(8)}`, headers: auth, body: json({ x: 1 }) })),
    { method: 'GET', path: `${V3}/sync?filter=${encodeURIComponent(JSON.stringify({ account_data: { types: ['**********x'] } }))}`, headers: auth },
    // Item 7: key backups for rooms named like Object.prototype members, then reading them back.
    { method: 'POST', path: `${V3}/room_keys/version`, headers: auth, body: json({ algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: { public_key: 'x' } }) },
    ...['__proto__', 'constructor', 'toString'].map((room) => ({ method: 'PUT', path: `${V3}/room_keys/keys/${room}/s?version=1`, headers: auth, body: json(backupKey) })),
    { method: 'PUT', path: `${V3}/room_keys/keys?version=1`, headers: auth, body: Buffer.from(`{"rooms":{"__proto__":{"sessions":{"s":${JSON.stringify(backupKey)}}}}}`) },
    { method: 'PUT', path: `${V3}/room_keys/keys/!r:test.local/__proto__?version=1`, headers: auth, body: json(backupKey) },
    { method: 'GET', path: `${V3}/room_keys/keys?version=1`, headers: auth },
    { method: 'POST', path: `${V3}/keys/claim`, headers: auth, body: Buffer.from(`{"one_time_keys":{"${userId}":{"__proto__":"signed_curve25519"}}}`) },
    // Item 5: U+0000 in strings (a 500 on PostgreSQL).
    { method: 'POST', path: `${V3}/login`, headers: auth, body: json({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'a\u0000b' }, password: 'x' }) },
    { method: 'POST', path: `${V3}/register`, headers: { 'content-type': 'application/json' }, body: json({ username: 'nul', password: 'correct horse battery', initial_device_display_name: 'a\u0000b', auth: { type: 'm.login.dummy' } }) },
    { method: 'PUT', path: `${V3}/profile/${user}/displayname`, headers: auth, body: json({ displayname: 'a\u0000b' }) },
    { method: 'PUT', path: `${V3}/user/${user}/account_data/a%00b`, headers: auth, body: json({}) },
    { method: 'PUT', path: `${V3}/presence/${user}/status`, headers: auth, body: json({ presence: 'online', status_msg: 'a\u0000b' }) },
    { method: 'PUT', path: `${V3}/pushrules/global/content/a%00b`, headers: auth, body: json({ actions: ['notify'], pattern: 'x' }) },
    // Item 6: deep nesting.
    { method: 'POST', path: `${V3}/register`, headers: { 'content-type': 'application/json' }, body: Buffer.from(`{"auth":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`) },
    { method: 'PUT', path: `${V3}/user/${user}/account_data/deep`, headers: auth, body: Buffer.from(`{"a":${'['.repeat(10_000)}${']'.repeat(10_000)}}`) },
  ];
}

for (const engine of ENGINES) {
  describe(`fuzzing every route (${engine})`, () => {
    it(`answers ${REQUESTS} malformed requests without a 5xx, and /versions within ${MAX_VERSIONS_MS} ms throughout`, { timeout: 120_000 }, async () => {
      const { report, routes } = await fuzzEngine(engine, { requests: REQUESTS, seed: SEED, maxMs: 60_000, fixed: knownOffenders });
      // The walk covers what the server registered, not a hand list: spot-check that it has them all.
      for (const path of ['/_matrix/client/v3/sync', '/_matrix/client/v3/room_keys/keys/:roomId/:sessionId', '/_matrix/client/versions']) {
        assert.ok(routes.some((r) => r.path === path), `${path} is not among the routes`);
      }
      assert.deepEqual(
        report.failures.map(({ request, answer }) => `${answer.status} ${answer.body.slice(0, 200)} <- ${describeRequest(request)}`),
        [],
      );
      assert.ok(report.sent >= REQUESTS, `only ${report.sent} requests were sent`);
      assert.ok(report.versionsPolls > 0);
      assert.ok(report.maxVersionsMs < MAX_VERSIONS_MS, `the slowest /versions took ${report.maxVersionsMs.toFixed(1)} ms`);
    });
  });
}
