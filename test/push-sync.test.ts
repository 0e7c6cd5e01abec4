import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { validateResponse } from './helpers/openapi.js';
import { ENGINES, ManualClock, startTestServer, type TestServer } from './helpers/server.js';

type Session = { user_id: string; access_token: string; device_id: string };
type Counts = { notification_count: number; highlight_count: number };
interface JoinedRoom {
  timeline: { events: { event_id: string }[] };
  ephemeral: { events: { type: string }[] };
  unread_notifications: Counts;
  unread_thread_notifications?: Record<string, Counts>;
}
interface SyncBody {
  next_batch: string;
  rooms?: { join?: Record<string, JoinedRoom> };
}
const enc = encodeURIComponent;
const DAY = 24 * 3_600_000;

// Counts are written with engine-specific SQL in the send's own write and read by sync: both engines.
for (const engine of ENGINES) {
  describe(`notification counts ride with their event and receipt in /sync (${engine})`, () => {
    let server: TestServer;
    let alice: Session;
    let bob: Session;
    let roomId: string;
    let txn = 0;
    const clock = new ManualClock();

    before(async () => {
      server = await startTestServer(engine, {}, { clock });
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
      roomId = (await server.api.post<{ room_id: string }>('/v3/createRoom', { preset: 'public_chat' }, { token: alice.access_token })).body.room_id;
      assert.equal((await server.api.post(`/v3/join/${enc(roomId)}`, {}, { token: bob.access_token })).status, 200);
    });
    after(() => server.close());

    const sync = async (who: Session, query: { since?: string; timeout?: number; filter?: object } = {}) => {
      const params = new URLSearchParams();
      if (query.since !== undefined) params.set('since', query.since);
      if (query.timeout !== undefined) params.set('timeout', String(query.timeout));
      if (query.filter !== undefined) params.set('filter', JSON.stringify(query.filter));
      const res = await server.api.get<SyncBody>(`/v3/sync?${params}`, { token: who.access_token });
      assert.equal(res.status, 200);
      await validateResponse('GET', '/_matrix/client/v3/sync', res.status, res.body);
      return res.body;
    };
    const send = async (content: Record<string, unknown>) => {
      const res = await server.api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/send/m.room.message/t${++txn}`, { msgtype: 'm.text', ...content }, { token: alice.access_token });
      assert.equal(res.status, 200);
      return res.body.event_id;
    };
    const receipt = async (eventId: string, body: object = {}, type = 'm.read') => {
      assert.equal((await server.api.post(`/v3/rooms/${enc(roomId)}/receipt/${type}/${enc(eventId)}`, body, { token: bob.access_token })).status, 200);
    };
    /** Bob long-polls from `since` while `act` runs; returns the first answer that holds `eventId`, and its room. */
    const longPollFor = async (since: string, act: () => Promise<string>) => {
      const first = sync(bob, { since, timeout: 20_000 });
      // Let the long-poll start waiting before the event is sent.
      await new Promise((resolve) => setTimeout(resolve, 150));
      const eventId = await act();
      let body = await first;
      for (let i = 0; i < 5 && !body.rooms?.join?.[roomId]?.timeline.events.some((e) => e.event_id === eventId); i++) {
        body = await sync(bob, { since: body.next_batch, timeout: 20_000 });
      }
      const room = body.rooms?.join?.[roomId];
      assert.ok(room?.timeline.events.some((e) => e.event_id === eventId), 'the message reached the long-poll');
      return { room: room!, body, eventId };
    };
    const filterOnlyCounts = { room: { timeline: { not_types: ['m.room.message'] }, ephemeral: { not_types: ['*'] } } };

    let since = '';
    let mentionId = '';
    it('the long-poll woken by a message carries its count, and a mention its highlight', async () => {
      since = (await sync(bob)).next_batch;
      const first = await longPollFor(since, () => send({ body: 'hello bob', 'm.mentions': { user_ids: [bob.user_id] } }));
      mentionId = first.eventId;
      assert.deepEqual(first.room.unread_notifications, { notification_count: 1, highlight_count: 1 });
      const second = await longPollFor(first.body.next_batch, () => send({ body: 'and again' }));
      assert.deepEqual(second.room.unread_notifications, { notification_count: 2, highlight_count: 1 });
      // Alice, the sender, has nothing unread.
      assert.deepEqual((await sync(alice)).rooms?.join?.[roomId]?.unread_notifications, { notification_count: 0, highlight_count: 0 });
      since = second.body.next_batch;
    });

    it("a read receipt brings the room into the reader's next sync with the new counts, whatever the filter leaves out", async () => {
      const latest = (await server.api.get<{ chunk: { event_id: string }[] }>(`/v3/rooms/${enc(roomId)}/messages?dir=b&limit=1`, { token: bob.access_token })).body.chunk[0]!.event_id;
      await receipt(mentionId);
      // Read up to the mention: the later message still counts, the highlight does not.
      const partly = await sync(bob, { since });
      assert.deepEqual(partly.rooms?.join?.[roomId]?.unread_notifications, { notification_count: 1, highlight_count: 0 });
      await receipt(latest, {}, 'm.read.private');
      // With receipts and messages filtered out, the room still comes: only its counts changed.
      const filtered = await sync(bob, { since: partly.next_batch, filter: filterOnlyCounts });
      const room = filtered.rooms?.join?.[roomId];
      assert.ok(room, 'the room is in the sync');
      assert.deepEqual(room.unread_notifications, { notification_count: 0, highlight_count: 0 });
      assert.deepEqual([room.timeline.events.length, room.ephemeral.events.length], [0, 0]);
      // Nothing changed since then: the room is not sent again.
      assert.equal((await sync(bob, { since: filtered.next_batch, filter: filterOnlyCounts })).rooms?.join?.[roomId], undefined);
      since = filtered.next_batch;
    });

    it('a count change alone (the message itself filtered out) brings the room into the sync', async () => {
      await send({ body: 'filtered out' });
      const body = await sync(bob, { since, filter: filterOnlyCounts });
      const room = body.rooms?.join?.[roomId];
      assert.ok(room, 'the room is in the sync');
      assert.deepEqual(room.timeline.events, []);
      assert.deepEqual(room.unread_notifications, { notification_count: 1, highlight_count: 0 });
      // A message that notifies no one (m.notice) and is filtered out changes no count: no room.
      await send({ msgtype: 'm.notice', body: 'quiet' });
      assert.equal((await sync(bob, { since: body.next_batch, filter: filterOnlyCounts })).rooms?.join?.[roomId], undefined);
    });

    it('counts threads apart when the filter asks (unread_thread_notifications), and thread receipts clear their thread', async () => {
      const before = (await sync(bob)).next_batch;
      const root = await send({ body: 'a root' });
      const reply = await send({ body: 'in the thread', 'm.relates_to': { rel_type: 'm.thread', event_id: root } });
      await send({ body: 'in the thread, mentioning bob', 'm.mentions': { user_ids: [bob.user_id] }, 'm.relates_to': { rel_type: 'm.thread', event_id: root } });
      const threaded = { room: { timeline: { unread_thread_notifications: true } } };
      let room = (await sync(bob, { since: before, filter: threaded })).rooms!.join![roomId]!;
      // Main timeline: 'filtered out' (earlier) and the root; the thread: two, one a mention.
      assert.deepEqual(room.unread_notifications, { notification_count: 2, highlight_count: 0 });
      assert.deepEqual(room.unread_thread_notifications, { [root]: { notification_count: 2, highlight_count: 1 } });
      room = (await sync(bob, { since: before })).rooms!.join![roomId]!;
      assert.deepEqual(room.unread_notifications, { notification_count: 4, highlight_count: 1 }, 'without the filter: every thread summed');
      assert.equal(room.unread_thread_notifications, undefined);

      // A receipt in the thread, on its first reply: the thread's mention is still unread; the main timeline is untouched.
      const mark = (await sync(bob)).next_batch;
      await receipt(reply, { thread_id: root });
      room = (await sync(bob, { since: mark, filter: threaded })).rooms!.join![roomId]!;
      assert.deepEqual(room.unread_notifications, { notification_count: 2, highlight_count: 0 });
      assert.deepEqual(room.unread_thread_notifications, { [root]: { notification_count: 1, highlight_count: 1 } });
      // A main-timeline receipt on the root clears the main timeline only.
      await receipt(root, { thread_id: 'main' });
      room = (await sync(bob, { filter: threaded })).rooms!.join![roomId]!;
      assert.deepEqual(room.unread_notifications, { notification_count: 0, highlight_count: 0 });
      assert.deepEqual(room.unread_thread_notifications, { [root]: { notification_count: 1, highlight_count: 1 } });
      // An unthreaded receipt on the latest event clears everything.
      const latest = (await server.api.get<{ chunk: { event_id: string }[] }>(`/v3/rooms/${enc(roomId)}/messages?dir=b&limit=1`, { token: bob.access_token })).body.chunk[0]!.event_id;
      await receipt(latest);
      room = (await sync(bob, { filter: threaded })).rooms!.join![roomId]!;
      assert.deepEqual(room.unread_notifications, { notification_count: 0, highlight_count: 0 });
      assert.equal(room.unread_thread_notifications, undefined);
    });

    it('maintenance forgets read notifications past 30 days and keeps unread and recent ones', async () => {
      const list = async () =>
        (await server.api.get<{ notifications: { event: { event_id: string } }[] }>('/v3/notifications?limit=1000', { token: bob.access_token })).body.notifications.map((n) => n.event.event_id);
      const old1 = await send({ body: 'old, read' });
      const old2 = await send({ body: 'old, unread' });
      await receipt(old1);
      const kept = await list();
      clock.advance(31 * DAY);
      const prune = () => server.hs.services.notifications.prune();
      const pruned = await prune();
      const left = await list();
      assert.ok(pruned >= 1);
      assert.ok(!left.includes(old1), 'the old read notification is gone');
      assert.ok(left.includes(old2), 'the old unread one is kept');
      assert.deepEqual(left, kept.filter((id) => left.includes(id)));
      assert.ok(kept.length - left.length === pruned);

      const recent = await send({ body: 'recent' });
      await receipt(recent);
      await prune();
      const now = await list();
      assert.ok(!now.includes(old2), 'read now, and old: gone');
      assert.deepEqual(now, [recent], 'the recent read notification is kept');
      assert.deepEqual((await sync(bob)).rooms?.join?.[roomId]?.unread_notifications, { notification_count: 0, highlight_count: 0 });
      // A notification after the pruning still counts.
      await send({ body: 'after pruning' });
      assert.deepEqual((await sync(bob)).rooms?.join?.[roomId]?.unread_notifications, { notification_count: 1, highlight_count: 0 });
    });

    it('a thread receipt recounts its own thread only (the room still comes in the sync), an unthreaded one every thread up to its event', async () => {
      const inThread = (root: string) => ({ 'm.relates_to': { rel_type: 'm.thread', event_id: root } });
      const rootA = await send({ body: 'root A' });
      const rootB = await send({ body: 'root B' });
      const a1 = await send({ body: 'a1', ...inThread(rootA) });
      const b1 = await send({ body: 'b1', ...inThread(rootB) });
      const a2 = await send({ body: 'a2', ...inThread(rootA) });
      await send({ body: 'b2, mentioning bob', 'm.mentions': { user_ids: [bob.user_id] }, ...inThread(rootB) });
      await send({ body: 'main again' });
      // Only counts: messages and receipts filtered out.
      const countsOnly = { room: { timeline: { not_types: ['m.room.message'], unread_thread_notifications: true }, ephemeral: { not_types: ['*'] } } };
      let since = (await sync(bob, { filter: countsOnly })).next_batch;
      const counts = async () => {
        const body = await sync(bob, { since, filter: countsOnly });
        since = body.next_batch;
        const room = body.rooms?.join?.[roomId];
        assert.ok(room, 'the room is in the sync');
        return { main: room.unread_notifications, threads: room.unread_thread_notifications };
      };
      const n = (notification_count: number, highlight_count = 0) => ({ notification_count, highlight_count });

      // 'after pruning' (from before), both roots and 'main again' on the main timeline.
      await receipt(a1, { thread_id: rootA });
      assert.deepEqual(await counts(), { main: n(4), threads: { [rootA]: n(1), [rootB]: n(2, 1) } });
      // On thread B's root: nothing in the thread is read, yet the room comes, its counts as they were.
      await receipt(rootB, { thread_id: rootB });
      assert.deepEqual(await counts(), { main: n(4), threads: { [rootA]: n(1), [rootB]: n(2, 1) } });
      // Unthreaded, on b1: the main timeline up to it, thread B up to it, thread A kept at its own further receipt.
      await receipt(b1);
      assert.deepEqual(await counts(), { main: n(1), threads: { [rootA]: n(1), [rootB]: n(1, 1) } });
      // Thread A read to its end: it has no count left, and the room still comes with the change.
      await receipt(a2, { thread_id: rootA });
      assert.deepEqual(await counts(), { main: n(1), threads: { [rootB]: n(1, 1) } });
    });
  });
}
