import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

type Session = { user_id: string; access_token: string; device_id: string };
type Notification = { actions: unknown[]; event: { event_id: string; type: string }; read: boolean; room_id: string; ts: number };
const enc = encodeURIComponent;

// Counts are upserted with engine-specific SQL, and notifications paged by position: both engines.
for (const engine of ENGINES) {
  describe(`notification counts in /sync and GET /notifications (${engine})`, () => {
    let server: TestServer;
    let alice: Session;
    let bob: Session;
    let roomId: string;
    const sent: string[] = [];
    before(async () => {
      server = await startTestServer(engine);
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
      roomId = (await server.api.post<{ room_id: string }>('/v3/createRoom', { preset: 'public_chat' }, { token: alice.access_token })).body.room_id;
      await server.api.post(`/v3/join/${enc(roomId)}`, {}, { token: bob.access_token });
      let txn = 0;
      for (const content of [
        { msgtype: 'm.text', body: 'one' },
        { msgtype: 'm.text', body: 'two', 'm.mentions': { user_ids: [bob.user_id] } },
        { msgtype: 'm.notice', body: 'not notifying' },
        { msgtype: 'm.text', body: 'three' },
      ]) {
        const res = await server.api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/send/m.room.message/n${++txn}`, content, { token: alice.access_token });
        sent.push(res.body.event_id);
      }
    });
    after(() => server.close());

    const counts = async (who: Session) => {
      const res = await server.api.get<{ rooms: { join: Record<string, { unread_notifications: { notification_count: number; highlight_count: number } }> } }>('/v3/sync', { token: who.access_token });
      assert.equal(res.status, 200);
      return res.body.rooms.join[roomId]!.unread_notifications;
    };

    it('counts notifying events per room for each member but the sender, and a reset (a read receipt) clears them', async () => {
      await until(async () => (await counts(bob)).notification_count === 3, 'three notifications counted for bob');
      assert.deepEqual(await counts(bob), { notification_count: 3, highlight_count: 1 });
      assert.deepEqual(await counts(alice), { notification_count: 0, highlight_count: 0 });
      // A read receipt counts what came after the event it acknowledges: 'two' (the mention) read, 'three' not.
      const receipt = (eventId: string) => server.api.post(`/v3/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {}, { token: bob.access_token });
      assert.equal((await receipt(sent[1]!)).status, 200);
      assert.deepEqual(await counts(bob), { notification_count: 1, highlight_count: 0 });
      // A receipt naming a thread the event is not in is refused and changes nothing.
      assert.equal((await server.api.post(`/v3/rooms/${enc(roomId)}/receipt/m.read/${enc(sent[3]!)}`, { thread_id: 'some-thread' }, { token: bob.access_token })).status, 400);
      assert.deepEqual(await counts(bob), { notification_count: 1, highlight_count: 0 });
    });

    it('lists notifications newest first, pages with next_token, and filters highlights', async () => {
      const list = (query: string, who = bob) => server.api.get<{ notifications: Notification[]; next_token?: string }>(`/v3/notifications${query}`, { token: who.access_token });
      const all = await list('');
      assert.equal(all.status, 200);
      assert.deepEqual(all.body.notifications.map((n) => n.event.event_id), [sent[3], sent[1], sent[0]]);
      const [latest] = all.body.notifications;
      assert.deepEqual([latest!.room_id, latest!.read, latest!.actions, latest!.event.type], [roomId, false, ['notify', { set_tweak: 'sound', value: 'default' }], 'm.room.message'], 'a room of two: .m.rule.room_one_to_one');
      assert.deepEqual(all.body.notifications.map((n) => n.read), [false, true, true], 'read up to the receipt');
      assert.ok(Math.abs(latest!.ts - Date.now()) < 60_000);
      assert.equal(all.body.next_token, undefined);

      const page = await list('?limit=2');
      assert.deepEqual(page.body.notifications.map((n) => n.event.event_id), [sent[3], sent[1]]);
      assert.ok(page.body.next_token);
      const rest = await list(`?limit=2&from=${enc(page.body.next_token!)}`);
      assert.deepEqual(rest.body.notifications.map((n) => n.event.event_id), [sent[0]]);
      assert.equal(rest.body.next_token, undefined);

      const highlights = await list('?only=highlight');
      assert.deepEqual(highlights.body.notifications.map((n) => n.event.event_id), [sent[1]]);
      assert.deepEqual(highlights.body.notifications[0]!.actions, ['notify', { set_tweak: 'sound', value: 'default' }, { set_tweak: 'highlight' }]);
      assert.deepEqual((await list('', alice)).body.notifications, []);

      for (const bad of ['?from=abc', '?limit=x', '?limit=-1']) {
        const res = await list(bad);
        assert.deepEqual([res.status, (res.body as unknown as { errcode: string }).errcode], [400, 'M_INVALID_PARAM'], bad);
      }
      assert.equal((await server.api.get('/v3/notifications')).status, 401);
    });

    it('a receipt on the latest event clears the counts, and a private receipt does too', async () => {
      assert.equal((await server.api.post(`/v3/rooms/${enc(roomId)}/receipt/m.read.private/${enc(sent[3]!)}`, {}, { token: bob.access_token })).status, 200);
      assert.deepEqual(await counts(bob), { notification_count: 0, highlight_count: 0 });
      const res = await server.api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/send/m.room.message/n-after`, { msgtype: 'm.text', body: 'four' }, { token: alice.access_token });
      assert.equal(res.status, 200);
      await until(async () => (await counts(bob)).notification_count === 1, 'a new message counts again after the receipt');
    });

    it('lists an event as soon as its send has returned (its notifications commit with it)', async () => {
      for (let i = 0; i < 3; i++) {
        const res = await server.api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/send/m.room.message/at-once-${i}`, { msgtype: 'm.text', body: `at once ${i}` }, { token: alice.access_token });
        assert.equal(res.status, 200);
        const list = await server.api.get<{ notifications: Notification[] }>('/v3/notifications?limit=1', { token: bob.access_token });
        assert.equal(list.status, 200);
        assert.equal(list.body.notifications[0]?.event.event_id, res.body.event_id, `send ${i}: the newest notification is the event just sent`);
        assert.equal(list.body.notifications[0]?.read, false);
      }
    });

    it('keeps the counts exact while receipts race the sends (each recount sees every send before it)', async () => {
      const room = (await server.api.post<{ room_id: string }>('/v3/createRoom', { preset: 'public_chat' }, { token: alice.access_token })).body.room_id;
      assert.equal((await server.api.post(`/v3/join/${enc(room)}`, {}, { token: bob.access_token })).status, 200);
      const events: string[] = [];
      let sending = true;
      const sends = (async () => {
        for (let i = 0; i < 30; i++) {
          const res = await server.api.put<{ event_id: string }>(`/v3/rooms/${enc(room)}/send/m.room.message/race-${i}`, { msgtype: 'm.text', body: `race ${i}` }, { token: alice.access_token });
          assert.equal(res.status, 200);
          events.push(res.body.event_id);
        }
        sending = false;
      })();
      // Two of bob's receipts at a time, each on the latest message sent, while the sends go on.
      const reader = async () => {
        while (sending) {
          const latest = events.at(-1);
          if (latest === undefined) await new Promise((r) => setTimeout(r, 5));
          else assert.equal((await server.api.post(`/v3/rooms/${enc(room)}/receipt/m.read/${enc(latest)}`, {}, { token: bob.access_token })).status, 200);
        }
      };
      await Promise.all([sends, reader(), reader()]);
      const read = await server.hs.services.receipts.latestReadReceipt(bob.user_id, room);
      assert.ok(read, 'bob read some of the messages');
      const positions = await Promise.all(events.map(async (id) => Number((await server.hs.services.store.events.get(id))!.stream_pos)));
      const unread = positions.filter((pos) => pos > read.eventPos).length;
      const res = await server.api.get<{ rooms: { join: Record<string, { unread_notifications: { notification_count: number } }> } }>('/v3/sync', { token: bob.access_token });
      assert.equal(res.body.rooms.join[room]!.unread_notifications.notification_count, unread, `the messages after bob's receipt (${unread} of ${events.length})`);
    });
  });
}
