import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as sdk from 'matrix-js-sdk';
import { HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';
import { rejection, SdkClients } from './helpers/sdk.js';

// matrix-js-sdk 37 as Element drives the directories: the Explore dialog (publicRooms with a filter,
// paging with `since`), room settings (directory visibility) and the invite dialog (searchUserDirectory).
for (const engine of HTTP_ENGINES) {
  describe(`matrix-js-sdk and the directories (${engine})`, () => {
    let server: TestServer;
    const clients = new SdkClients(() => server.url);
    let alice: sdk.MatrixClient;
    let bob: sdk.MatrixClient;

    before(async () => {
      server = await startTestServer(engine);
      const a = await server.api.register('alice');
      const b = await server.api.register('bob');
      alice = clients.create({ userId: a.user_id, accessToken: a.access_token, deviceId: a.device_id });
      bob = clients.create({ userId: b.user_id, accessToken: b.access_token, deviceId: b.device_id });
      await alice.setDisplayName('Alice Liddell');
    });
    after(async () => {
      clients.stopAll();
      await server.close();
    });

    it('publishes rooms and lists, filters and pages them with publicRooms', async () => {
      const { room_id: lobby } = await alice.createRoom({ visibility: sdk.Visibility.Public, preset: sdk.Preset.PublicChat, name: 'Wonderland lobby', topic: 'Tea parties' });
      const { room_id: quiet } = await alice.createRoom({ preset: sdk.Preset.PublicChat, name: 'Wonderland quiet' });
      assert.deepEqual(await alice.getRoomDirectoryVisibility(lobby), { visibility: 'public' });
      assert.deepEqual(await alice.getRoomDirectoryVisibility(quiet), { visibility: 'private' });
      await alice.setRoomDirectoryVisibility(quiet, sdk.Visibility.Public);
      await bob.joinRoom(quiet);

      const found = await bob.publicRooms({ filter: { generic_search_term: 'wonderland' } });
      assert.deepEqual(
        found.chunk.map((r) => [r.name, r.num_joined_members]),
        [
          ['Wonderland quiet', 2],
          ['Wonderland lobby', 1],
        ],
      );
      assert.equal(found.chunk[1]!.topic, 'Tea parties');
      assert.equal(found.total_room_count_estimate, 2);

      const first = await bob.publicRooms({ limit: 1 });
      assert.equal(first.chunk[0]!.room_id, quiet);
      assert.ok(first.next_batch);
      const second = await bob.publicRooms({ limit: 1, since: first.next_batch });
      assert.equal(second.chunk[0]!.room_id, lobby);
      assert.equal(second.next_batch, undefined);

      const refused = await rejection(() => bob.setRoomDirectoryVisibility(lobby, sdk.Visibility.Private));
      assert.equal(refused.errcode, 'M_FORBIDDEN');
      const remote = await rejection(() => bob.publicRooms({ server: 'matrix.org' }));
      assert.equal(remote.errcode, 'M_FORBIDDEN');
    });

    it('finds a room-mate with searchUserDirectory, by display name or user ID', async () => {
      const byName = await bob.searchUserDirectory({ term: 'lidd' });
      assert.deepEqual(byName.results, [{ user_id: alice.getUserId(), display_name: 'Alice Liddell' }]);
      assert.equal(byName.limited, false);
      const byId = await bob.searchUserDirectory({ term: alice.getUserId()!, limit: 5 });
      assert.equal(byId.results[0]?.user_id, alice.getUserId());
      const nobody = await bob.searchUserDirectory({ term: 'cheshire' });
      assert.deepEqual(nobody, { results: [], limited: false });
    });
  });
}
