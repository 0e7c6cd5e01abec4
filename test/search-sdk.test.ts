import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as sdk from 'matrix-js-sdk';
import { HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';
import { SdkClients } from './helpers/sdk.js';

// The SDK's requests add nothing engine-specific to what search-http covers on both engines.
for (const engine of HTTP_ENGINES) {
  describe(`matrix-js-sdk searchRoomEvents (${engine})`, () => {
    let server: TestServer;
    const clients = new SdkClients(() => server.url);

    before(async () => {
      server = await startTestServer(engine, { rc_message: { per_second: 1000, burst_count: 1000 } });
    });
    after(async () => {
      clients.stopAll();
      await server.close();
    });

    it('finds the messages, pages back through them all with next_batch, and reads each result\u2019s context', async () => {
      const login = await server.api.register('alice');
      const alice = clients.create({ userId: login.user_id, accessToken: login.access_token, deviceId: login.device_id });
      const { room_id: roomId } = await alice.createRoom({ preset: sdk.Preset.PrivateChat, name: 'Orchard' });
      const sent: string[] = [];
      for (let i = 0; i < 14; i++) {
        sent.push((await alice.sendTextMessage(roomId, `persimmon number ${i}`)).event_id);
        await alice.sendTextMessage(roomId, `filler ${i}`);
      }

      const results = await alice.searchRoomEvents({ term: 'persimmon' });
      assert.equal(results.count, 14);
      assert.equal(results.results.length, 10);
      assert.ok(results.next_batch);
      assert.ok(results.highlights.includes('persimmon'));
      // Newest first (the SDK asks for `recent`), each with the filler message after it as context.
      assert.deepEqual(results.results.map((r) => r.context.getEvent().getId()), sent.slice(4).reverse());
      const newest = results.results[0]!.context;
      assert.equal(newest.getEvent().getContent().body, 'persimmon number 13');
      assert.deepEqual(newest.getTimeline().map((e) => e.getContent().body), ['filler 12', 'persimmon number 13', 'filler 13']);

      await alice.backPaginateRoomEventsSearch(results);
      assert.equal(results.results.length, 14);
      assert.equal(results.next_batch, undefined);
      assert.deepEqual(results.results.map((r) => r.context.getEvent().getId()), [...sent].reverse());
      await assert.rejects(alice.backPaginateRoomEventsSearch(results), /Cannot backpaginate/);
    });
  });
}
