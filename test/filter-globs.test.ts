import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import type { ApiResponse } from './helpers/api.js';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

type Sync = { account_data: { events: { type: string }[] }; errcode?: string; error?: string };

/** Runs `request` while a /versions request goes out at the same moment; both durations. */
async function alongsideVersions<T>(server: TestServer, request: () => Promise<T>): Promise<{ result: T; ms: number; versionsMs: number }> {
  const started = performance.now();
  const timed = request().then((result) => ({ result, ms: performance.now() - started }));
  const versions = server.api.get('/versions').then((res) => {
    assert.equal(res.status, 200);
    return performance.now() - started;
  });
  const [{ result, ms }, versionsMs] = await Promise.all([timed, versions]);
  return { result, ms, versionsMs };
}

for (const engine of ENGINES) {
  describe(`sync filter globs (${engine})`, () => {
    let server: TestServer;
    let alice: { user_id: string; access_token: string };
    const syncWith = (filter: unknown) =>
      server.api.get<Sync>(`/v3/sync?filter=${encodeURIComponent(JSON.stringify(filter))}`, { token: alice.access_token });
    const putType = (type: string) =>
      server.api.put(`/v3/user/${encodeURIComponent(alice.user_id)}/account_data/${encodeURIComponent(type)}`, { x: 1 }, { token: alice.access_token });

    before(async () => {
      server = await startTestServer(engine);
      alice = await server.api.register('alice');
      // 36-character types, as in the review's attack.
      for (const type of ['org.example.aaaaaaaaaaaaaaaaaaaaaaaa', 'org.example.bbbbbbbbbbbbbbbbbbbbbbbb', 'org.example.cccccccccccccccccccccccc']) {
        assert.equal(type.length, 36);
        assert.equal((await putType(type)).status, 200);
      }
    });
    after(async () => server.close());

    it('answers the star-bomb filter at once, and /versions meanwhile', async () => {
      const { result, ms, versionsMs } = await alongsideVersions(server, () => syncWith({ account_data: { types: ['********x'] } }));
      assert.equal(result.status, 200);
      assert.deepEqual(result.body.account_data.events, []);
      assert.ok(ms < 1000, `the sync took ${Math.round(ms)} ms`);
      assert.ok(versionsMs < 500, `/versions took ${Math.round(versionsMs)} ms`);
    });

    it('answers quickly at the pattern limits too (stored: 100 patterns of 255 characters, over 100-character types)', async () => {
      const patterns = Array.from({ length: 100 }, (_, i) => `${'a*'.repeat(127)}${String.fromCharCode(98 + (i % 20))}`);
      assert.ok(patterns.every((p) => p.length === 255));
      const path = `/v3/user/${encodeURIComponent(alice.user_id)}/filter`;
      // Without the bound this test would not end (a regex over these never finishes): check it first.
      const tooMany = await server.api.post(path, { account_data: { types: [...patterns, 'x'] } }, { token: alice.access_token });
      assert.equal(tooMany.status, 400);
      // The longest type a path parameter carries (Fastify's maxParamLength), for the pattern-length worst case.
      assert.equal((await putType('a'.repeat(100))).status, 200);
      // Too long for a URL: as a stored filter.
      const stored = await server.api.post<{ filter_id: string }>(path, { account_data: { types: patterns, not_types: patterns } }, { token: alice.access_token });
      assert.equal(stored.status, 200);
      const { result, ms, versionsMs } = await alongsideVersions(server, () =>
        server.api.get<Sync>(`/v3/sync?filter=${stored.body.filter_id}`, { token: alice.access_token }),
      );
      assert.equal(result.status, 200, JSON.stringify(result.body));
      assert.ok(ms < 1000, `the sync took ${Math.round(ms)} ms`);
      assert.ok(versionsMs < 500, `/versions took ${Math.round(versionsMs)} ms`);
    });

    it('still matches * anywhere, and keeps regex metacharacters and ? literal', async () => {
      const types = async (filter: unknown) => {
        const res = await syncWith({ account_data: filter });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        return res.body.account_data.events.map((e) => e.type).sort();
      };
      assert.deepEqual(await types({ types: ['org.example.b*'] }), ['org.example.bbbbbbbbbbbbbbbbbbbbbbbb']);
      assert.deepEqual(await types({ types: ['*.c*c'] }), ['org.example.cccccccccccccccccccccccc']);
      assert.deepEqual(await types({ types: ['org.example.*', 'm.push_rules'], not_types: ['*a'] }), [
        'm.push_rules',
        'org.example.bbbbbbbbbbbbbbbbbbbbbbbb',
        'org.example.cccccccccccccccccccccccc',
      ]);
      assert.deepEqual(await types({ types: ['org.example.?bbbbbbbbbbbbbbbbbbbbbbb', 'org.example.(a)*', 'org.example.[abc]*', 'org.example..*'] }), []);
      assert.deepEqual(await types({ types: ['org?example.*'] }), []);
    });

    it('refuses too many or too long patterns, inline and stored, naming the field', async () => {
      const tooMany = Array.from({ length: 101 }, (_, i) => `org.example.${i}`);
      const tooLong = `${'a'.repeat(255)}*`;
      const cases: [unknown, string][] = [
        [{ account_data: { types: tooMany } }, 'account_data.types'],
        [{ account_data: { not_types: [tooLong] } }, 'account_data.not_types.0'],
        [{ presence: { not_types: tooMany } }, 'presence.not_types'],
        [{ room: { timeline: { types: [tooLong] } } }, 'room.timeline.types.0'],
      ];
      const path = `/v3/user/${encodeURIComponent(alice.user_id)}/filter`;
      for (const [filter, field] of cases) {
        const answers: ApiResponse<{ errcode?: string; error?: string }>[] = [
          await syncWith(filter),
          await server.api.post(path, filter, { token: alice.access_token }),
        ];
        for (const res of answers) {
          assert.equal(res.status, 400, JSON.stringify(filter));
          assert.equal(res.body.errcode, 'M_BAD_JSON');
          assert.ok(res.body.error?.includes(field), res.body.error);
        }
      }
      // Exactly at the limits is fine.
      const atLimit = { account_data: { types: [...tooMany.slice(2), 'a'.repeat(255)] } };
      assert.equal((await server.api.post(path, atLimit, { token: alice.access_token })).status, 200);
    });
  });
}
