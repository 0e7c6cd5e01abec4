import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as sdk from 'matrix-js-sdk';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';
import { prepared, SdkClients } from './helpers/sdk.js';
import { until } from './helpers/until.js';

type Login = { user_id: string; access_token: string; device_id: string };

/** The body a client shows for an event: the latest edit's new content when the SDK applied one. */
const shownBody = (room: sdk.Room | null, eventId: string) => room?.findEventById(eventId)?.getContent().body as string | undefined;

/** The bodies of a thread's replies, as the SDK holds them. */
const threadBodies = (room: sdk.Room | null, rootId: string) =>
  (room?.getThread(rootId)?.events ?? []).filter((e) => e.getId() !== rootId && e.getType() === 'm.room.message').map((e) => String(e.getContent().body));

// Both engines, as every relations suite: what the SDK reads comes from the engine-specific reads.
for (const engine of ENGINES) {
  describe(`matrix-js-sdk with threads: edits and thread replies (${engine})`, () => {
    let server: TestServer;
    const clients = new SdkClients(() => server.url);
    const logins: Record<string, Login> = {};

    const start = async (login: Login, initialSyncLimit = 20) => {
      const client = clients.create({ userId: login.user_id, accessToken: login.access_token, deviceId: login.device_id });
      const ready = prepared(client);
      await client.startClient({ initialSyncLimit, lazyLoadMembers: true, threadSupport: true });
      await ready;
      return client;
    };

    before(async () => {
      server = await startTestServer(engine);
      for (const name of ['alice', 'bob']) logins[name] = await server.api.register(name);
    });
    after(async () => {
      clients.stopAll();
      await server.close();
    });

    it('shows the other user an edit and a thread, live and after a fresh start', async () => {
      const alice = await start(logins.alice!);
      const bob = await start(logins.bob!);
      assert.equal(alice.supportsThreads(), true);
      const { room_id: roomId } = await alice.createRoom({ preset: sdk.Preset.PublicChat });
      await bob.joinRoom(roomId);

      const original = await alice.sendTextMessage(roomId, 'lunch at noon?');
      await until(() => shownBody(bob.getRoom(roomId), original.event_id) === 'lunch at noon?', 'bob to see the message');
      await alice.sendMessage(roomId, {
        msgtype: 'm.text',
        body: '* lunch at one?',
        'm.new_content': { msgtype: 'm.text', body: 'lunch at one?' },
        'm.relates_to': { rel_type: sdk.RelationType.Replace, event_id: original.event_id },
      } as never);
      // With a thread ID the SDK adds the m.thread relation (and the reply fallback) itself.
      await alice.sendMessage(roomId, original.event_id, { msgtype: 'm.text', body: 'the usual place' } as never);

      await until(() => shownBody(bob.getRoom(roomId), original.event_id) === 'lunch at one?', 'bob (live) to see the edit');
      await until(() => threadBodies(bob.getRoom(roomId), original.event_id).includes('the usual place'), 'bob (live) to see the thread reply');

      // A new device of bob's, whose first sync holds only the thread reply: the root, its edit and the
      // thread summary reach it only through bundled aggregations (the root's, fetched by the SDK).
      const fresh = await start(await server.api.login('bob'), 1);
      const freshThread = () => fresh.getRoom(roomId)?.getThread(original.event_id) ?? undefined;
      await until(() => freshThread()?.rootEvent?.getContent().body === 'lunch at one?', 'the fresh client to apply the bundled edit to the thread root');
      const thread = freshThread()!;
      assert.ok(thread.rootEvent!.replacingEventId(), 'the edit came bundled');
      assert.equal(thread.replyToEvent?.getContent().body, 'the usual place');
      assert.ok(thread.length >= 1);
      // The thread list the SDK fetched from /threads names it too.
      const listed = await fresh.createThreadListMessagesRequest(roomId, null, 10, sdk.Direction.Backward, sdk.ThreadFilterType.All);
      assert.deepEqual(
        listed.chunk.map((e) => e.event_id),
        [original.event_id],
      );
    });
  });
}
