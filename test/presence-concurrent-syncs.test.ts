import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

type SyncBody = { next_batch: string; presence: { events: { sender: string; content: { presence: string } }[] } };

// Both engines: whether a concurrent writer's change is visible depends on how each engine commits.
for (const engine of ENGINES) {
  describe(`presence set by concurrent syncs of one user (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine);
    });
    after(async () => server.close());

    it('puts the change in every answer, so that no next_batch comes before it', async () => {
      // Several users with ten devices each, all syncing for the first time at once (as bench/sync-idle.ts does).
      const devices: { userId: string; token: string }[] = [];
      for (const name of ['busy-a', 'busy-b', 'busy-c', 'busy-d']) {
        const first = await server.api.register(name);
        devices.push({ userId: first.user_id, token: first.access_token });
        for (let i = 0; i < 9; i++) devices.push({ userId: first.user_id, token: (await server.api.login(name)).access_token });
      }
      const initial = await Promise.all(devices.map(({ token }) => server.api.get<SyncBody>('/v3/sync', { token })));
      initial.forEach((res, i) => {
        assert.equal(res.status, 200);
        assert.deepEqual(res.body.presence.events.map((e) => [e.sender, e.content.presence]), [[devices[i]!.userId, 'online']], `device ${i}`);
      });
      // Nothing happened after any of those tokens: each follow-up waits out its timeout and brings nothing.
      const next = await Promise.all(initial.map((res, i) => server.api.get<SyncBody>(`/v3/sync?timeout=300&since=${res.body.next_batch}`, { token: devices[i]!.token })));
      next.forEach((res, i) => assert.deepEqual(res.body.presence.events, [], `device ${i}: ${JSON.stringify(res.body.presence)}`));
    });
  });
}
