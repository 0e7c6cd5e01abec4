import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as sdk from 'matrix-js-sdk';
import { HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';
import { prepared, SdkClients, waitFor } from './helpers/sdk.js';

type Login = { user_id: string; access_token: string; device_id: string };

/** Resolves once `check` passes, checked again at each of `client`'s events of these kinds. */
function reaches(client: sdk.MatrixClient, kinds: readonly string[], check: () => boolean, what: string): Promise<void> {
  if (check()) return Promise.resolve();
  return waitFor<unknown>(
    (h) => {
      for (const k of kinds) client.on(k as never, h as never);
      return () => {
        for (const k of kinds) client.off(k as never, h as never);
      };
    },
    () => check(),
    what,
  ).then(() => undefined);
}

// The client's view of receipts, typing and tags: what matrix-js-sdk 37 makes of the sync answers.
for (const engine of HTTP_ENGINES) {
  describe(`matrix-js-sdk: receipts, typing and tags (${engine})`, () => {
    let server: TestServer;
    const clients = new SdkClients(() => server.url);
    const logins: Record<string, Login> = {};
    const started: Record<string, sdk.MatrixClient> = {};
    before(async () => {
      server = await startTestServer(engine);
      for (const name of ['alice', 'bob']) {
        logins[name] = await server.api.register(name);
        const c = clients.create({ userId: logins[name].user_id, accessToken: logins[name].access_token, deviceId: logins[name].device_id });
        const ready = prepared(c);
        await c.startClient({ initialSyncLimit: 20 });
        await ready;
        started[name] = c;
      }
    });
    after(async () => {
      clients.stopAll();
      await server.close();
    });

    it('one sends, the other reads it and types: the sender sees the receipt and the typing; tags reach the tagger', async () => {
      const alice = started.alice!;
      const bob = started.bob!;
      const { room_id: roomId } = await alice.createRoom({ preset: sdk.Preset.PublicChat });
      await bob.joinRoom(roomId);
      const { event_id: eventId } = await alice.sendTextMessage(roomId, 'did you read this?');

      await reaches(bob, [sdk.RoomEvent.Timeline], () => bob.getRoom(roomId)?.findEventById(eventId) !== undefined, 'bob to get the message');
      const event = bob.getRoom(roomId)!.findEventById(eventId)!;
      await bob.sendReadReceipt(event, sdk.ReceiptType.Read);
      await reaches(alice, [sdk.RoomEvent.Receipt], () => alice.getRoom(roomId)?.getEventReadUpTo(logins.bob!.user_id, true) === eventId, 'alice to see bob’s receipt');
      assert.ok(alice.getRoom(roomId)!.hasUserReadEvent(logins.bob!.user_id, eventId));

      await bob.sendTyping(roomId, true, 30_000);
      const member = () => alice.getRoom(roomId)?.getMember(logins.bob!.user_id);
      await reaches(alice, [sdk.RoomMemberEvent.Typing], () => member()?.typing === true, 'alice to see bob typing');
      await bob.sendTyping(roomId, false, 0);
      await reaches(alice, [sdk.RoomMemberEvent.Typing], () => member()?.typing === false, 'alice to see bob stop typing');

      await alice.setRoomTag(roomId, 'u.work', { order: 0.5 });
      await reaches(alice, [sdk.RoomEvent.Tags], () => alice.getRoom(roomId)?.tags['u.work']?.order === 0.5, 'alice to see her tag');
      await alice.deleteRoomTag(roomId, 'u.work');
      await reaches(alice, [sdk.RoomEvent.Tags], () => alice.getRoom(roomId)?.tags['u.work'] === undefined, 'alice to see the tag gone');

      await bob.setRoomReadMarkers(roomId, eventId);
      await reaches(bob, [sdk.RoomEvent.AccountData], () => bob.getRoom(roomId)?.getAccountData('m.fully_read')?.getContent().event_id === eventId, 'bob to see his read marker');
    });
  });
}
