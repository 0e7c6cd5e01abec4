import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { enc, ephemeralOf, roomActions, type SyncBody, type User } from './helpers/room-actions.js';
import { ENGINES, startTestServer, twoProcessesOnePostgres, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

type Receipts = Record<string, Record<string, Record<string, { ts: number; thread_id?: string }>>>;

/** The m.receipt content of a room in a sync answer ({} when there is none). */
function receiptsOf(sync: SyncBody, roomId: string): Receipts {
  const events = ephemeralOf(sync, roomId, 'm.receipt');
  assert.ok(events.length <= 1, 'one m.receipt event per room');
  return (events[0]?.content ?? {}) as Receipts;
}

/** Who holds a receipt of `type` on which event: "event user" pairs, sorted. */
function holders(receipts: Receipts, type: string): string[] {
  const out: string[] = [];
  for (const [eventId, byType] of Object.entries(receipts)) for (const userId of Object.keys(byType[type] ?? {})) out.push(`${eventId} ${userId}`);
  return out.sort();
}

// Both engines: the receipt reads use engine-specific SQL (ANY arrays on PostgreSQL, IN lists on
// SQLite) and a conditional upsert, and positions are taken under PostgreSQL's stream lock.
for (const engine of ENGINES) {
  describe(`read receipts and read markers (${engine})`, () => {
    let server: TestServer;
    let alice: User;
    let bob: User;
    let carol: User;
    const { sync, createRoom, join, send } = roomActions(() => server);
    const receipt = (who: User, roomId: string, type: string, eventId: string, body: unknown = {}) =>
      server.api.post(`/v3/rooms/${enc(roomId)}/receipt/${enc(type)}/${enc(eventId)}`, body, { token: who.access_token });
    const markers = (who: User, roomId: string, body: unknown) => server.api.post(`/v3/rooms/${enc(roomId)}/read_markers`, body, { token: who.access_token });

    before(async () => {
      server = await startTestServer(engine);
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
      carol = await server.api.register('carol');
    });
    after(() => server.close());

    it('sends a receipt to the room: the other member sees it, then only the newest per user, never moved backwards', async () => {
      const roomId = await createRoom(alice);
      await join(bob, roomId);
      const first = await send(alice, roomId, 'one');
      const second = await send(alice, roomId, 'two');
      const start = await sync(alice);
      assert.deepEqual(receiptsOf(start, roomId), {});

      const before = Date.now();
      assert.equal((await receipt(bob, roomId, 'm.read', first)).status, 200);
      const afterFirst = await sync(alice, { since: start.next_batch });
      const seen = receiptsOf(afterFirst, roomId);
      assert.deepEqual(holders(seen, 'm.read'), [`${first} ${bob.user_id}`]);
      const ts = seen[first]!['m.read']![bob.user_id]!.ts;
      assert.ok(ts >= before - 5 && ts <= Date.now() + 5, `ts ${ts} is the server's time of the receipt`);
      assert.equal('thread_id' in seen[first]!['m.read']![bob.user_id]!, false, 'an unthreaded receipt has no thread_id');

      assert.equal((await receipt(bob, roomId, 'm.read', second)).status, 200);
      // Incrementally from before both, and in an initial sync: only the newest of bob's receipts.
      assert.deepEqual(holders(receiptsOf(await sync(alice, { since: start.next_batch }), roomId), 'm.read'), [`${second} ${bob.user_id}`]);
      assert.deepEqual(holders(receiptsOf(await sync(alice), roomId), 'm.read'), [`${second} ${bob.user_id}`]);

      // An older event: accepted, and nothing changes (no new position either).
      const latest = await sync(alice);
      assert.equal((await receipt(bob, roomId, 'm.read', first)).status, 200);
      const again = await sync(alice, { since: latest.next_batch });
      assert.equal(again.next_batch, latest.next_batch);
      assert.deepEqual(holders(receiptsOf(await sync(alice), roomId), 'm.read'), [`${second} ${bob.user_id}`]);

      // The sender sees their own receipt too, and the service tells the push rules where bob read up to.
      assert.deepEqual(holders(receiptsOf(await sync(bob), roomId), 'm.read'), [`${second} ${bob.user_id}`]);
      const read = await server.hs.services.receipts.latestReadReceipt(bob.user_id, roomId);
      assert.equal(read?.eventId, second);
      assert.equal(read?.type, 'm.read');
      assert.equal(await server.hs.services.receipts.latestReadReceipt(alice.user_id, roomId), undefined);
    });

    it('shows an m.read.private receipt to its owner only', async () => {
      const roomId = await createRoom(alice);
      await join(bob, roomId);
      const eventId = await send(alice, roomId, 'secret reading');
      const aliceStart = await sync(alice);
      const bobStart = await sync(bob);
      assert.equal((await receipt(bob, roomId, 'm.read.private', eventId)).status, 200);
      assert.deepEqual(holders(receiptsOf(await sync(bob, { since: bobStart.next_batch }), roomId), 'm.read.private'), [`${eventId} ${bob.user_id}`]);
      assert.deepEqual(holders(receiptsOf(await sync(bob), roomId), 'm.read.private'), [`${eventId} ${bob.user_id}`]);
      const aliceLater = await sync(alice, { since: aliceStart.next_batch });
      assert.equal(aliceLater.rooms.join[roomId], undefined, 'nothing new for alice in the room');
      assert.deepEqual(receiptsOf(await sync(alice), roomId), {});
      // The private receipt counts as bob's read position.
      assert.equal((await server.hs.services.receipts.latestReadReceipt(bob.user_id, roomId))?.type, 'm.read.private');
    });

    it('keeps threaded receipts apart: thread_id main and a thread root, checked against the event', async () => {
      const roomId = await createRoom(alice);
      await join(bob, roomId);
      const root = await send(alice, roomId, 'root');
      const reply = await send(alice, roomId, { msgtype: 'm.text', body: 'in thread', 'm.relates_to': { rel_type: 'm.thread', event_id: root } });
      const reaction = (
        await server.api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/send/m.reaction/r1`, { 'm.relates_to': { rel_type: 'm.annotation', event_id: reply, key: '👍' } }, { token: alice.access_token })
      ).body.event_id;
      const other = await send(alice, roomId, 'main again');

      assert.equal((await receipt(bob, roomId, 'm.read', reply, { thread_id: root })).status, 200);
      assert.equal((await receipt(bob, roomId, 'm.read', reaction, { thread_id: root })).status, 200, 'a reaction to a threaded event is in the thread');
      assert.equal((await receipt(bob, roomId, 'm.read', root, { thread_id: 'main' })).status, 200, 'a thread root is on the main timeline');
      assert.equal((await receipt(bob, roomId, 'm.read', other)).status, 200);

      for (const [eventId, threadId] of [
        [reply, 'main'],
        [reaction, 'main'],
        [other, root],
        [reply, other],
      ] as const) {
        const res = await receipt(bob, roomId, 'm.read', eventId, { thread_id: threadId });
        assert.equal(res.status, 400, `${eventId} in ${threadId}`);
        assert.equal(res.body.errcode, 'M_INVALID_PARAM');
      }
      for (const threadId of ['', 5, null]) {
        const res = await receipt(bob, roomId, 'm.read', other, { thread_id: threadId });
        assert.equal(res.status, 400, JSON.stringify(threadId));
        assert.equal(res.body.errcode, 'M_INVALID_PARAM');
      }
      const fullyRead = await receipt(bob, roomId, 'm.fully_read', other, { thread_id: 'main' });
      assert.equal(fullyRead.status, 400);
      assert.equal(fullyRead.body.errcode, 'M_INVALID_PARAM');

      const seen = receiptsOf(await sync(alice), roomId);
      assert.deepEqual(seen[reaction]!['m.read']![bob.user_id]!.thread_id, root, 'the thread receipt moved on to the reaction');
      assert.equal(seen[reply], undefined, 'only the newest receipt of the thread');
      assert.equal(seen[root]!['m.read']![bob.user_id]!.thread_id, 'main');
      assert.equal('thread_id' in seen[other]!['m.read']![bob.user_id]!, false);
    });

    it('sets the read marker and receipts through read_markers, the marker in room account data and only forwards', async () => {
      const roomId = await createRoom(alice);
      await join(bob, roomId);
      const [one, two, three] = [await send(alice, roomId, '1'), await send(alice, roomId, '2'), await send(alice, roomId, '3')];
      const start = await sync(bob);
      assert.equal((await markers(bob, roomId, { 'm.fully_read': two, 'm.read': two, 'm.read.private': one })).status, 200);
      const marker = () => server.api.get(`/v3/user/${enc(bob.user_id)}/rooms/${enc(roomId)}/account_data/m.fully_read`, { token: bob.access_token });
      assert.deepEqual((await marker()).body, { event_id: two });
      const later = await sync(bob, { since: start.next_batch });
      assert.deepEqual(later.rooms.join[roomId]!.account_data.events, [{ type: 'm.fully_read', content: { event_id: two } }]);
      const seen = receiptsOf(later, roomId);
      assert.deepEqual(holders(seen, 'm.read'), [`${two} ${bob.user_id}`]);
      assert.deepEqual(holders(seen, 'm.read.private'), [`${one} ${bob.user_id}`]);
      assert.ok(!ephemeralOf(later, roomId, 'm.fully_read').length, 'm.fully_read is no receipt');

      // Backwards is ignored; /receipt/m.fully_read moves it like read_markers does.
      assert.equal((await markers(bob, roomId, { 'm.fully_read': one })).status, 200);
      assert.deepEqual((await marker()).body, { event_id: two });
      assert.equal((await receipt(bob, roomId, 'm.fully_read', three)).status, 200);
      assert.deepEqual((await marker()).body, { event_id: three });
      assert.deepEqual(receiptsOf(await sync(alice), roomId)[three], undefined, 'the marker is not a receipt others see');
      // Only the server sets it.
      const direct = await server.api.put(`/v3/user/${enc(bob.user_id)}/rooms/${enc(roomId)}/account_data/m.fully_read`, { event_id: one }, { token: bob.access_token });
      assert.equal(direct.status, 405);
      // An empty body changes nothing and is no error.
      assert.equal((await markers(bob, roomId, {})).status, 200);
    });

    it('answers bad input with the right Matrix error, never a 500', async () => {
      const roomId = await createRoom(alice);
      await join(bob, roomId);
      const eventId = await send(alice, roomId, 'hello');
      const elsewhere = await createRoom(alice);
      const foreign = await send(alice, elsewhere, 'elsewhere');
      const cases: [string, () => ReturnType<typeof receipt>, number, string][] = [
        ['unknown room', () => receipt(bob, '!nowhere:test.local', 'm.read', eventId), 403, 'M_FORBIDDEN'],
        ['not joined', () => receipt(carol, roomId, 'm.read', eventId), 403, 'M_FORBIDDEN'],
        ['unknown event', () => receipt(bob, roomId, 'm.read', '$nothing'), 404, 'M_NOT_FOUND'],
        ['event of another room', () => receipt(alice, roomId, 'm.read', foreign), 404, 'M_NOT_FOUND'],
        ['unknown receipt type', () => receipt(bob, roomId, 'm.unread', eventId), 400, 'M_INVALID_PARAM'],
        ['not an event ID', () => receipt(bob, roomId, 'm.read', 'nope'), 400, 'M_INVALID_PARAM'],
        ['not a room ID', () => receipt(bob, 'room', 'm.read', eventId), 400, 'M_INVALID_PARAM'],
        ['a body that is no object', () => receipt(bob, roomId, 'm.read', eventId, [1]), 400, 'M_BAD_JSON'],
        ['markers: unknown room', () => markers(bob, '!nowhere:test.local', { 'm.read': eventId }), 403, 'M_FORBIDDEN'],
        ['markers: not joined', () => markers(carol, roomId, { 'm.fully_read': eventId }), 403, 'M_FORBIDDEN'],
        ['markers: unknown event', () => markers(bob, roomId, { 'm.fully_read': '$nothing' }), 404, 'M_NOT_FOUND'],
        ['markers: event of another room', () => markers(alice, roomId, { 'm.read': foreign }), 404, 'M_NOT_FOUND'],
        ['markers: not a string', () => markers(bob, roomId, { 'm.read': 5 }), 400, 'M_BAD_JSON'],
        ['markers: not an event ID', () => markers(bob, roomId, { 'm.read.private': 'x' }), 400, 'M_INVALID_PARAM'],
      ];
      for (const [what, call, status, errcode] of cases) {
        const res = await call();
        assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.errcode, errcode, what);
      }
      // A failed read_markers wrote nothing, not even its valid parts.
      assert.equal((await markers(bob, roomId, { 'm.read': eventId, 'm.fully_read': '$nothing' })).status, 404);
      assert.deepEqual(receiptsOf(await sync(alice), roomId), {});
    });

    it('refuses a receipt repeated on the same event once its sender left, and takes it again after a rejoin', async () => {
      const roomId = await createRoom(alice);
      await join(bob, roomId);
      const eventId = await send(alice, roomId, 'read me');
      // The second is answered from what the process saw of the first.
      assert.equal((await receipt(bob, roomId, 'm.read', eventId)).status, 200);
      assert.equal((await receipt(bob, roomId, 'm.read', eventId)).status, 200);
      const left = await server.api.post(`/v3/rooms/${enc(roomId)}/leave`, {}, { token: bob.access_token });
      assert.equal(left.status, 200);
      const refused = await receipt(bob, roomId, 'm.read', eventId);
      assert.equal(refused.status, 403, JSON.stringify(refused.body));
      assert.equal(refused.body.errcode, 'M_FORBIDDEN');
      // Through read_markers as well (it checks the membership, then would write at the same event).
      assert.equal((await markers(bob, roomId, { 'm.read': eventId })).status, 403);
      await join(bob, roomId);
      assert.equal((await receipt(bob, roomId, 'm.read', eventId)).status, 200);
      assert.deepEqual(holders(receiptsOf(await sync(alice), roomId), 'm.read'), [`${eventId} ${bob.user_id}`]);
    });

    it('stores receipts sent at once (written together on PostgreSQL): every member’s, and each user’s furthest', async () => {
      const roomId = await createRoom(alice);
      await join(bob, roomId);
      await join(carol, roomId);
      const events = [await send(alice, roomId, 'a'), await send(alice, roomId, 'b'), await send(alice, roomId, 'c')];
      const answers = await Promise.all([
        ...events.map((eventId) => receipt(bob, roomId, 'm.read', eventId)),
        ...[...events].reverse().map((eventId) => receipt(carol, roomId, 'm.read', eventId)),
        receipt(alice, roomId, 'm.read', events[0]!),
        receipt(bob, roomId, 'm.read.private', events[1]!),
      ]);
      assert.deepEqual(answers.map((a) => a.status), answers.map(() => 200));
      const seen = receiptsOf(await sync(alice), roomId);
      assert.deepEqual(holders(seen, 'm.read'), [`${events[0]} ${alice.user_id}`, `${events[2]} ${bob.user_id}`, `${events[2]} ${carol.user_id}`].sort());
      assert.deepEqual(holders(receiptsOf(await sync(bob), roomId), 'm.read.private'), [`${events[1]} ${bob.user_id}`]);
    });

    it('hides events from before a join that history visibility keeps from the new member', async () => {
      const roomId = await createRoom(alice);
      const state = await server.api.put(`/v3/rooms/${enc(roomId)}/state/m.room.history_visibility/`, { history_visibility: 'joined' }, { token: alice.access_token });
      assert.equal(state.status, 200);
      const hidden = await send(alice, roomId, 'before bob');
      await join(bob, roomId);
      const visible = await send(alice, roomId, 'after bob');
      assert.equal((await receipt(bob, roomId, 'm.read', hidden)).status, 404);
      assert.equal((await receipt(bob, roomId, 'm.read', visible)).status, 200);
    });

    it('wakes a waiting long-poll at once for a public receipt, and not for another member’s private one', async () => {
      const roomId = await createRoom(alice);
      await join(bob, roomId);
      const eventId = await send(alice, roomId, 'wake me');
      const start = await sync(alice);
      const notifier = server.hs.services.notifier;

      let waiting = server.api.get<SyncBody>(`/v3/sync?since=${start.next_batch}&timeout=1500`, { token: alice.access_token });
      await until(() => notifier.waiting === 1, 'the sync to wait');
      const privateAt = Date.now();
      assert.equal((await receipt(bob, roomId, 'm.read.private', eventId)).status, 200);
      const quiet = await waiting;
      assert.ok(Date.now() - privateAt >= 1000, 'a private receipt of bob did not wake alice');
      assert.equal(quiet.body.rooms.join[roomId], undefined);

      waiting = server.api.get<SyncBody>(`/v3/sync?since=${quiet.body.next_batch}&timeout=30000`, { token: alice.access_token });
      await until(() => notifier.waiting === 1, 'the sync to wait');
      const sentAt = Date.now();
      assert.equal((await receipt(bob, roomId, 'm.read', eventId)).status, 200);
      const woken = await waiting;
      assert.ok(Date.now() - sentAt < 5000, `returned ${Date.now() - sentAt} ms after the receipt, long before its 30 s timeout (the machine may be loaded)`);
      assert.deepEqual(holders(receiptsOf(woken.body, roomId), 'm.read'), [`${eventId} ${bob.user_id}`]);
    });

    it('gives a newly joined member the room’s receipts, and follows the ephemeral filter', async () => {
      const roomId = await createRoom(alice);
      await join(bob, roomId);
      const eventId = await send(alice, roomId, 'read me');
      assert.equal((await receipt(bob, roomId, 'm.read', eventId)).status, 200);
      const dave = await server.api.register(`dave${engine}`);
      const start = await sync(dave);
      await join(dave, roomId);
      const joined = await sync(dave, { since: start.next_batch });
      assert.deepEqual(holders(receiptsOf(joined, roomId), 'm.read'), [`${eventId} ${bob.user_id}`]);

      const noReceipts = await sync(dave, { filter: { room: { ephemeral: { not_types: ['m.receipt'] } } } });
      assert.deepEqual(ephemeralOf(noReceipts, roomId, 'm.receipt'), []);
      const otherRooms = await sync(dave, { filter: { room: { ephemeral: { not_rooms: [roomId] } } } });
      assert.deepEqual(otherRooms.rooms.join[roomId]!.ephemeral.events, []);
      const onlyReceipts = await sync(dave, { filter: { room: { ephemeral: { types: ['m.receipt'] } } } });
      assert.deepEqual(holders(receiptsOf(onlyReceipts, roomId), 'm.read'), [`${eventId} ${bob.user_id}`]);
    });
  });
}

describe('receipts across two homeserver processes sharing PostgreSQL', () => {
  const servers = twoProcessesOnePostgres();

  it('wakes a long-poll on one process when a receipt is sent through the other', async () => {
    const { sync, createRoom, join, send } = roomActions(() => servers.first);
    const alice = await servers.first.api.register('alice');
    const bob = await servers.second.api.register('bob');
    const roomId = await createRoom(alice);
    await join(bob, roomId);
    const eventId = await send(alice, roomId, 'across');
    const start = await sync(alice);
    const waiting = servers.first.api.get<SyncBody>(`/v3/sync?since=${start.next_batch}&timeout=30000`, { token: alice.access_token });
    await until(() => servers.first.hs.services.notifier.waiting === 1, 'the sync to wait');
    const sentAt = Date.now();
    const res = await servers.second.api.post(`/v3/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {}, { token: bob.access_token });
    assert.equal(res.status, 200);
    const woken = await waiting;
    assert.ok(Date.now() - sentAt < 5000, `returned ${Date.now() - sentAt} ms after the receipt, long before its 30 s timeout (the machine may be loaded)`);
    assert.deepEqual(holders(receiptsOf(woken.body, roomId), 'm.read'), [`${eventId} ${bob.user_id}`]);
  });

  it('refuses, on one process, a receipt it saw before once its sender left through the other', async () => {
    const { createRoom, join, send } = roomActions(() => servers.first);
    const alice = await servers.first.api.register('alice2');
    const bob = await servers.first.api.register('bob2');
    const roomId = await createRoom(alice);
    await join(bob, roomId);
    const eventId = await send(alice, roomId, 'seen on the second');
    const receipt = () => servers.second.api.post(`/v3/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {}, { token: bob.access_token });
    assert.equal((await receipt()).status, 200);
    assert.equal((await receipt()).status, 200);
    const left = await servers.first.api.post(`/v3/rooms/${enc(roomId)}/leave`, {}, { token: bob.access_token });
    assert.equal(left.status, 200);
    // The second process hears of the leave through PostgreSQL's notifications, within moments.
    await until(async () => (await receipt()).status === 403, 'the second process to refuse the left member', 5000);
    // And keeps refusing (nothing it saw before the leave comes back).
    assert.equal((await receipt()).status, 403);
  });
});
