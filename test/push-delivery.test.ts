import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakePushGateway } from './helpers/fake-push-gateway.js';
import { ENGINES, startTestServer, twoProcessesOnePostgres, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

type Session = { user_id: string; access_token: string; device_id: string };
const enc = encodeURIComponent;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Push delivery is a durable queue on the database (progress row locks, outbox claims): both engines.
for (const engine of ENGINES) {
  describe(`push delivery to http pushers (${engine})`, () => {
    let server: TestServer;
    const gateway = new FakePushGateway();
    let alice: Session;
    let bob: Session;
    let carol: Session;
    let roomId: string;
    let txn = 0;
    before(async () => {
      await gateway.start();
      server = await startTestServer(engine, { outbox: { poll_interval: 500 } });
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
      carol = await server.api.register('carol');
      await server.api.put(`/v3/profile/${enc(alice.user_id)}/displayname`, { displayname: 'Alice A.' }, { token: alice.access_token });
      const created = await server.api.post<{ room_id: string }>('/v3/createRoom', { name: 'Lunch', preset: 'public_chat' }, { token: alice.access_token });
      roomId = created.body.room_id;
      for (const who of [bob, carol]) assert.equal((await server.api.post(`/v3/join/${enc(roomId)}`, {}, { token: who.access_token })).status, 200);
      const pusher = { kind: 'http', app_id: 'org.example.app', app_display_name: 'App', device_display_name: 'Phone', lang: 'en' };
      await server.api.post('/v3/pushers/set', { ...pusher, pushkey: 'bob-full', data: { url: gateway.url, extra: 'kept' } }, { token: bob.access_token });
      await server.api.post('/v3/pushers/set', { ...pusher, pushkey: 'bob-id-only', data: { url: gateway.url, format: 'event_id_only' } }, { token: bob.access_token });
      await server.api.post('/v3/pushers/set', { ...pusher, pushkey: 'alice-key', data: { url: gateway.url } }, { token: alice.access_token });
    });
    after(async () => {
      await server.close();
      await gateway.stop();
    });

    const send = async (who: Session, content: Record<string, unknown>, type = 'm.room.message') => {
      const res = await server.api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/send/${type}/t${++txn}`, content, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.event_id;
    };
    /** Waits for `count` pushes of the event, then a little longer to catch a duplicate. */
    const pushesOf = async (eventId: string, count: number, timeoutMs = 20_000) => {
      await until(() => gateway.of(eventId).length >= count, `${count} pushes of ${eventId}`, timeoutMs);
      await sleep(700);
      return gateway.of(eventId);
    };

    it('pushes a message once to each pusher of each other member, in the format Sygnal takes', async () => {
      const eventId = await send(alice, { msgtype: 'm.text', body: 'soup today' });
      const pushes = await pushesOf(eventId, 2);
      assert.equal(pushes.length, 2, 'one per pusher of bob; none to alice, the sender; carol has no pusher');
      const full = pushes.find((p) => p.devices[0]!.pushkey === 'bob-full')!;
      assert.deepEqual(
        { ...full, devices: undefined },
        { event_id: eventId, id: eventId, room_id: roomId, type: 'm.room.message', sender: alice.user_id, sender_display_name: 'Alice A.', room_name: 'Lunch', content: { msgtype: 'm.text', body: 'soup today' }, counts: { unread: 1 }, prio: 'low', devices: undefined },
      );
      const device = full.devices[0]!;
      assert.equal(device.app_id, 'org.example.app');
      assert.deepEqual(device.data, { extra: 'kept' }, 'data without url');
      assert.deepEqual(device.tweaks, {});
      assert.ok(Number.isInteger(device.pushkey_ts) && Math.abs(device.pushkey_ts - Date.now() / 1000) < 600, 'pushkey_ts in seconds');
      const idOnly = pushes.find((p) => p.devices[0]!.pushkey === 'bob-id-only')!;
      assert.deepEqual(Object.keys(idOnly).sort(), ['counts', 'devices', 'event_id', 'prio', 'room_id']);
      assert.deepEqual(idOnly.devices[0]!.data, { format: 'event_id_only' });
    });

    it('follows the rules: a highlight is urgent, with its tweaks; a notice, a join and the sender get nothing', async () => {
      const mention = await send(alice, { msgtype: 'm.text', body: 'bob?', 'm.mentions': { user_ids: [bob.user_id] } });
      const [push] = (await pushesOf(mention, 2)).filter((p) => p.devices[0]!.pushkey === 'bob-full');
      assert.deepEqual([push?.prio, push?.devices[0]!.tweaks], ['high', { sound: 'default', highlight: true }]);
      assert.equal(push?.counts.unread, 1, 'one room with unread notifications');
      const notice = await send(alice, { msgtype: 'm.notice', body: 'bot' });
      const fromBob = await send(bob, { msgtype: 'm.text', body: 'from bob' });
      await pushesOf(fromBob, 1);
      assert.equal(gateway.of(notice).length, 0);
      assert.deepEqual(gateway.of(fromBob).map((p) => p.devices[0]!.pushkey), ['alice-key'], "bob's own message goes to alice only");
    });

    it('keeps a push over a 5 s gateway outage and delivers it once', async () => {
      await gateway.stop();
      const eventId = await send(alice, { msgtype: 'm.text', body: 'during the outage' });
      await sleep(5_000);
      assert.equal(gateway.of(eventId).length, 0);
      await gateway.start();
      const pushes = await pushesOf(eventId, 2, 30_000);
      assert.equal(pushes.length, 2);
    });

    it('keeps pushes over a restart: queued ones, and events not yet evaluated', async () => {
      await gateway.stop();
      const queued = await send(alice, { msgtype: 'm.text', body: 'queued before the restart' });
      await until(async () => (await server.hs.services.store.outbox.countPending()) >= 2, 'the pushes queued');
      // This process stops evaluating: the next event is stored but not yet evaluated when it stops.
      await server.hs.services.push.stop();
      const unevaluated = await send(alice, { msgtype: 'm.text', body: 'sent while evaluation was stopped' });
      await server.restart();
      await gateway.start();
      assert.equal((await pushesOf(queued, 2, 30_000)).length, 2);
      assert.equal((await pushesOf(unevaluated, 2, 30_000)).length, 2);
    });

    it('does not push an event sent before the pusher was set, even when it is evaluated after', async () => {
      await server.hs.services.push.stop();
      const before = await send(alice, { msgtype: 'm.text', body: 'before carol set her pusher' });
      await sleep(20);
      const pusher = { kind: 'http', app_id: 'org.example.app', app_display_name: 'App', device_display_name: 'Phone', lang: 'en' };
      assert.equal((await server.api.post('/v3/pushers/set', { ...pusher, pushkey: 'carol-late', data: { url: gateway.url } }, { token: carol.access_token })).status, 200);
      server.hs.services.push.start(server.hs.logger);
      const afterwards = await send(alice, { msgtype: 'm.text', body: 'after carol set her pusher' });
      assert.deepEqual((await pushesOf(afterwards, 3)).map((p) => p.devices[0]!.pushkey).sort(), ['bob-full', 'bob-id-only', 'carol-late']);
      assert.deepEqual(gateway.of(before).map((p) => p.devices[0]!.pushkey).sort(), ['bob-full', 'bob-id-only'], 'the earlier event went to the pushers that existed');
      assert.equal((await server.api.post('/v3/pushers/set', { ...pusher, kind: null, pushkey: 'carol-late', data: {} }, { token: carol.access_token })).status, 200);
    });

    it('pushes to a member who joined after the room was last read, under their new display name rules', async () => {
      const dave = await server.api.register('dave');
      await server.api.post('/v3/pushers/set', { kind: 'http', app_id: 'org.example.app', app_display_name: 'App', device_display_name: 'Phone', lang: 'en', pushkey: 'dave', data: { url: gateway.url } }, { token: dave.access_token });
      assert.equal((await server.api.post(`/v3/join/${enc(roomId)}`, {}, { token: dave.access_token })).status, 200);
      const plain = await send(alice, { msgtype: 'm.text', body: 'welcome' });
      const [push] = (await pushesOf(plain, 3)).filter((p) => p.devices[0]!.pushkey === 'dave');
      assert.deepEqual(push?.devices[0]!.tweaks, {}, 'an ordinary message');
      const renamed = await server.api.put(`/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(dave.user_id)}`, { membership: 'join', displayname: 'Captain Hook' }, { token: dave.access_token });
      assert.equal(renamed.status, 200);
      const named = await send(alice, { msgtype: 'm.text', body: 'ask captain hook' });
      const [highlighted] = (await pushesOf(named, 3)).filter((p) => p.devices[0]!.pushkey === 'dave');
      assert.equal(highlighted?.devices[0]!.tweaks.highlight, true, 'the new display name is matched');
      await server.api.post(`/v3/rooms/${enc(roomId)}/leave`, {}, { token: dave.access_token });
      const afterLeaving = await send(alice, { msgtype: 'm.text', body: 'gone' });
      assert.deepEqual((await pushesOf(afterLeaving, 2)).map((p) => p.devices[0]!.pushkey).sort(), ['bob-full', 'bob-id-only']);
    });

    it('names a room without a name by its canonical alias, and says an invite is one', async () => {
      const created = await server.api.post<{ room_id: string; room_alias: string }>('/v3/createRoom', { preset: 'private_chat', room_alias_name: `nameless-${engine}` }, { token: alice.access_token });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      const other = created.body.room_id;
      assert.equal((await server.api.post(`/v3/rooms/${enc(other)}/invite`, { user_id: bob.user_id }, { token: alice.access_token })).status, 200);
      await until(() => gateway.received.some((n) => n.room_id === other && n.type === 'm.room.member'), 'the invite pushed to bob');
      const invite = gateway.received.find((n) => n.room_id === other && n.type === 'm.room.member' && n.devices[0]!.pushkey === 'bob-full')!;
      assert.deepEqual([invite.membership, invite.user_is_target, invite.room_name, invite.room_alias], ['invite', true, created.body.room_alias, created.body.room_alias]);
    });

    it('clears the badge with a push without an event once the messages are read', async () => {
      const eventId = await send(alice, { msgtype: 'm.text', body: 'read me' });
      const [pushed] = (await pushesOf(eventId, 2)).filter((p) => p.devices[0]!.pushkey === 'bob-full');
      assert.ok(pushed!.counts.unread >= 1, 'the push counts the room as unread');
      const badges = () => gateway.received.filter((n) => n.event_id === undefined && n.devices[0]!.pushkey.startsWith('bob-'));
      const before = badges().length;
      const read = await server.api.post(`/v3/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {}, { token: bob.access_token });
      assert.equal(read.status, 200);
      await until(() => badges().length >= before + 2, 'a badge push to each of bob\'s pushers');
      await sleep(500);
      const sent = badges().slice(before);
      assert.deepEqual(sent.map((n) => n.devices[0]!.pushkey).sort(), ['bob-full', 'bob-id-only']);
      for (const badge of sent) {
        assert.deepEqual(Object.keys(badge).sort(), ['counts', 'devices', 'prio']);
        // One room fewer with unread notifications: this one is read now.
        assert.deepEqual(badge.counts, { unread: pushed!.counts.unread - 1 });
      }
      // The same receipt again moves nothing: no badge push.
      assert.equal((await server.api.post(`/v3/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {}, { token: bob.access_token })).status, 200);
      await sleep(700);
      assert.equal(badges().length, before + 2);
    });

    it('deletes the pusher of a pushkey the gateway rejects', async () => {
      gateway.rejecting.add('bob-id-only');
      const eventId = await send(alice, { msgtype: 'm.text', body: 'rejected' });
      await pushesOf(eventId, 2);
      await until(async () => {
        const res = await server.api.get<{ pushers: { pushkey: string }[] }>('/v3/pushers', { token: bob.access_token });
        return res.body.pushers.length === 1;
      }, 'the rejected pusher deleted');
      const res = await server.api.get<{ pushers: { pushkey: string }[] }>('/v3/pushers', { token: bob.access_token });
      assert.deepEqual(res.body.pushers.map((p) => p.pushkey), ['bob-full']);
      const next = await send(alice, { msgtype: 'm.text', body: 'after' });
      assert.deepEqual((await pushesOf(next, 1)).map((p) => p.devices[0]!.pushkey), ['bob-full']);
    });
  });
}

describe('push delivery: two processes on one PostgreSQL database', () => {
  const pair = twoProcessesOnePostgres();
  const gateway = new FakePushGateway();
  before(() => gateway.start());
  after(() => gateway.stop());

  it('pushes each event once, whichever process wrote it and whichever evaluates it', async () => {
    const { first, second } = pair;
    const alice = await first.api.register('alice');
    const bob = await second.api.register('bob');
    const roomId = (await first.api.post<{ room_id: string }>('/v3/createRoom', { preset: 'public_chat' }, { token: alice.access_token })).body.room_id;
    await second.api.post(`/v3/join/${enc(roomId)}`, {}, { token: bob.access_token });
    const pusher = { kind: 'http', app_id: 'org.example.app', app_display_name: 'App', device_display_name: 'Phone', lang: 'en', pushkey: 'bob', data: { url: gateway.url } };
    assert.equal((await second.api.post('/v3/pushers/set', pusher, { token: bob.access_token })).status, 200);
    const sent = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const api = i % 2 === 0 ? first.api : second.api;
        const res = await api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/send/m.room.message/two${i}`, { msgtype: 'm.text', body: `m${i}` }, { token: alice.access_token });
        assert.equal(res.status, 200);
        return res.body.event_id;
      }),
    );
    await until(() => sent.every((id) => gateway.of(id).length >= 1), 'a push of every event', 30_000);
    await sleep(1_500);
    assert.deepEqual(sent.map((id) => gateway.of(id).length), sent.map(() => 1));
  });
});
