import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as sdk from 'matrix-js-sdk';
import { HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';
import { prepared, SdkClients, waitFor } from './helpers/sdk.js';

type Login = { user_id: string; access_token: string; device_id: string };

/** Resolves once `client`'s room `roomId` satisfies `test`, checked at every timeline or state change. */
function roomReaches(client: sdk.MatrixClient, roomId: string, test: (room: sdk.Room) => boolean, what: string): Promise<sdk.Room> {
  const check = () => {
    const room = client.getRoom(roomId);
    return room && test(room) ? room : undefined;
  };
  const now = check();
  if (now) return Promise.resolve(now);
  return waitFor<unknown>(
    (h) => {
      const events = [sdk.RoomEvent.Timeline, sdk.RoomEvent.MyMembership, sdk.RoomStateEvent.Events, sdk.ClientEvent.Room, sdk.RoomEvent.Redaction] as const;
      for (const e of events) client.on(e as never, h as never);
      return () => {
        for (const e of events) client.off(e as never, h as never);
      };
    },
    () => check() !== undefined,
    what,
  ).then(() => check()!);
}

const bodies = (room: sdk.Room) =>
  room
    .getLiveTimeline()
    .getEvents()
    .filter((e) => e.getType() === 'm.room.message')
    .map((e) => (e.isRedacted() ? '<redacted>' : String(e.getContent().body)));

for (const engine of HTTP_ENGINES) {
  describe(`matrix-js-sdk in rooms (${engine})`, () => {
    let server: TestServer;
    const clients = new SdkClients(() => server.url);
    const logins: Record<string, Login> = {};
    const started: Record<string, sdk.MatrixClient> = {};
    before(async () => {
      server = await startTestServer(engine);
      for (const name of ['alice', 'bob', 'carol']) {
        logins[name] = await server.api.register(name);
        const c = clients.create({ userId: logins[name].user_id, accessToken: logins[name].access_token, deviceId: logins[name].device_id });
        const ready = prepared(c);
        await c.startClient({ initialSyncLimit: 20, lazyLoadMembers: true });
        await ready;
        started[name] = c;
      }
    });
    after(async () => {
      clients.stopAll();
      await server.close();
    });

    it('creates, invites, joins, talks, replies, redacts, changes the topic, leaves, rejoins, kicks and bans', async () => {
      const { alice, bob, carol } = started as Record<string, sdk.MatrixClient>;
      const { room_id: roomId } = await alice!.createRoom({ name: 'Garden', preset: sdk.Preset.PrivateChat, invite: [logins.bob!.user_id] });
      await roomReaches(bob!, roomId, (r) => r.getMyMembership() === 'invite', 'bob to see the invite');
      await bob!.joinRoom(roomId);
      await roomReaches(alice!, roomId, (r) => r.getMember(logins.bob!.user_id)?.membership === 'join', 'alice to see bob join');
      assert.equal(bob!.getRoom(roomId)?.name, 'Garden');

      const hello = await alice!.sendTextMessage(roomId, 'hello bob');
      await roomReaches(bob!, roomId, (r) => bodies(r).includes('hello bob'), 'bob to get the message');
      await bob!.sendMessage(roomId, { msgtype: 'm.text', body: 'hi alice', 'm.relates_to': { 'm.in_reply_to': { event_id: hello.event_id } } } as never);
      const aliceRoom = await roomReaches(alice!, roomId, (r) => bodies(r).includes('hi alice'), 'alice to get the reply');
      const reply = aliceRoom.getLiveTimeline().getEvents().find((e) => e.getContent().body === 'hi alice')!;
      assert.equal(reply.replyEventId, hello.event_id);
      // The sender's own echo carries its transaction ID, so the SDK matched it: no duplicate.
      assert.equal(bodies(aliceRoom).filter((b) => b === 'hello bob').length, 1);

      await alice!.redactEvent(roomId, hello.event_id, undefined, { reason: 'typo' });
      await roomReaches(bob!, roomId, (r) => r.findEventById(hello.event_id)?.isRedacted() === true, 'bob to see the redaction');

      await alice!.setRoomTopic(roomId, 'Tomatoes');
      const bobRoom = await roomReaches(bob!, roomId, (r) => r.currentState.getStateEvents('m.room.topic', '')?.getContent().topic === 'Tomatoes', 'bob to see the topic');
      const topic = bobRoom.currentState.getStateEvents('m.room.topic', '')!;
      assert.equal(topic.getSender(), logins.alice!.user_id);

      await bob!.leave(roomId);
      await roomReaches(alice!, roomId, (r) => r.getMember(logins.bob!.user_id)?.membership === 'leave', 'alice to see bob leave');
      await alice!.invite(roomId, logins.bob!.user_id);
      await roomReaches(bob!, roomId, (r) => r.getMyMembership() === 'invite', 'bob to be invited again');
      await bob!.joinRoom(roomId);
      await roomReaches(alice!, roomId, (r) => r.getMember(logins.bob!.user_id)?.membership === 'join', 'alice to see bob rejoin');

      await alice!.invite(roomId, logins.carol!.user_id);
      await roomReaches(carol!, roomId, (r) => r.getMyMembership() === 'invite', 'carol to be invited');
      await carol!.joinRoom(roomId);
      await alice!.kick(roomId, logins.carol!.user_id, 'noise');
      await roomReaches(carol!, roomId, (r) => r.getMyMembership() === 'leave', 'carol to see the kick');
      await alice!.ban(roomId, logins.carol!.user_id, 'more noise');
      await roomReaches(bob!, roomId, (r) => r.getMember(logins.carol!.user_id)?.membership === 'ban', 'bob to see the ban');
      const refused = await carol!.joinRoom(roomId).then(
        () => undefined,
        (err: unknown) => err as sdk.MatrixError,
      );
      assert.equal(refused?.errcode, 'M_FORBIDDEN');
    });

    it('shows each user only the history its visibility allows', async () => {
      const { alice, bob, carol } = started as Record<string, sdk.MatrixClient>;
      const { room_id: roomId } = await alice!.createRoom({ preset: sdk.Preset.PublicChat, initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }] });
      await alice!.sendTextMessage(roomId, 'before anyone');
      await bob!.joinRoom(roomId);
      await alice!.sendTextMessage(roomId, 'after bob');
      const bobRoom = await roomReaches(bob!, roomId, (r) => bodies(r).includes('after bob'), 'bob to get the later message');
      for (let i = 0; i < 5 && bobRoom.getLiveTimeline().getPaginationToken(sdk.EventTimeline.BACKWARDS) !== null; i++) await bob!.scrollback(bobRoom, 30);
      assert.ok(!bodies(bobRoom).includes('before anyone'), `bob sees only what came after his join: ${bodies(bobRoom).join(', ')}`);

      // shared: a late joiner sees what came before.
      const shared = await alice!.createRoom({ preset: sdk.Preset.PublicChat });
      await alice!.sendTextMessage(shared.room_id, 'old news');
      await carol!.joinRoom(shared.room_id);
      const carolRoom = await roomReaches(carol!, shared.room_id, (r) => r.getMyMembership() === 'join', 'carol to join');
      for (let i = 0; i < 5 && !bodies(carolRoom).includes('old news') && carolRoom.getLiveTimeline().getPaginationToken(sdk.EventTimeline.BACKWARDS) !== null; i++) await carol!.scrollback(carolRoom, 30);
      assert.ok(bodies(carolRoom).includes('old news'), `carol sees shared history: ${bodies(carolRoom).join(', ')}`);
    });

    it('lets room-mates find each other\'s device keys, claim one-time keys and send to-device messages', async () => {
      const { alice, bob } = started as Record<string, sdk.MatrixClient>;
      const a = logins.alice!;
      const b = logins.bob!;
      const { room_id: roomId } = await alice!.createRoom({ preset: sdk.Preset.TrustedPrivateChat, invite: [b.user_id], is_direct: true, initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }] });
      await roomReaches(bob!, roomId, (r) => r.getMyMembership() === 'invite', 'bob to see the DM invite');
      const deviceListSeen = waitFor<sdk.MatrixEvent>(
        (h) => {
          const handler = () => h(undefined as never);
          alice!.on(sdk.ClientEvent.Sync, handler);
          return () => alice!.off(sdk.ClientEvent.Sync, handler);
        },
        () => true,
        'a sync after bob joins',
      );
      await bob!.joinRoom(roomId);
      await deviceListSeen;
      await alice!.uploadKeysRequest({
        device_keys: {
          user_id: a.user_id,
          device_id: a.device_id,
          algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
          keys: { [`curve25519:${a.device_id}`]: 'curveA', [`ed25519:${a.device_id}`]: 'edA' },
          signatures: { [a.user_id]: { [`ed25519:${a.device_id}`]: 'sigA' } },
        },
        one_time_keys: { 'signed_curve25519:AAAAAQ': { key: 'otkA', signatures: { [a.user_id]: { [`ed25519:${a.device_id}`]: 'sigotk' } } } },
      } as never);
      const queried = await bob!.http.authedRequest<{ device_keys: Record<string, Record<string, unknown>> }>(sdk.Method.Post, '/keys/query', undefined, { device_keys: { [a.user_id]: [] } });
      assert.ok(queried.device_keys[a.user_id]?.[a.device_id], 'bob sees alice\'s device');
      const claimed = await bob!.http.authedRequest<{ one_time_keys: Record<string, Record<string, Record<string, unknown>>> }>(sdk.Method.Post, '/keys/claim', undefined, {
        one_time_keys: { [a.user_id]: { [a.device_id]: 'signed_curve25519' } },
      });
      assert.ok(claimed.one_time_keys[a.user_id]?.[a.device_id]?.['signed_curve25519:AAAAAQ'], 'bob claims alice\'s one-time key');
      const received = waitFor<sdk.MatrixEvent>(
        (h) => {
          alice!.on(sdk.ClientEvent.ToDeviceEvent, h);
          return () => alice!.off(sdk.ClientEvent.ToDeviceEvent, h);
        },
        (e) => e.getType() === 'm.room.encrypted',
        'the to-device message on alice',
      );
      await bob!.sendToDevice('m.room.encrypted', new Map([[a.user_id, new Map([[a.device_id, { algorithm: 'm.olm.v1.curve25519-aes-sha2', ciphertext: {} }]])]]));
      assert.equal((await received).getSender(), b.user_id);
      // Alice's device list for bob changed when they came to share a room.
      const changes = await server.api.get<{ changed: string[] }>(`/v3/keys/changes?from=m1_0&to=m1_999999999`, { token: a.access_token });
      assert.ok(changes.body.changed.includes(b.user_id), JSON.stringify(changes.body));
    });
  });
}
