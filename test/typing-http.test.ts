import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { enc, ephemeralOf, roomActions, type SyncBody, type User } from './helpers/room-actions.js';
import { ENGINES, startTestServer, twoProcessesOnePostgres, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

/** The user IDs of the room's m.typing in a sync answer; undefined when it has none. */
function typists(sync: SyncBody, roomId: string): string[] | undefined {
  const events = ephemeralOf(sync, roomId, 'm.typing');
  assert.ok(events.length <= 1, 'one m.typing event per room');
  return events[0] ? (events[0].content.user_ids as string[]) : undefined;
}

const typingPath = (roomId: string, userId: string) => `/v3/rooms/${enc(roomId)}/typing/${enc(userId)}`;

// Both engines: typing is a table read with engine-specific SQL (ANY arrays, a partial index) and
// its changes take positions under PostgreSQL's stream lock.
for (const engine of ENGINES) {
  describe(`typing notifications (${engine})`, () => {
    let server: TestServer;
    let alice: User;
    let bob: User;
    let carol: User;
    const { sync, createRoom, join } = roomActions(() => server);
    const setTyping = (who: User, roomId: string, body: unknown, target = who.user_id) => server.api.put(typingPath(roomId, target), body, { token: who.access_token });
    /** A long-poll from `since`, once it has started waiting (wrapped: an async function would await the answer itself). */
    const waitingSync = async (who: User, since: string, timeout = 30_000) => {
      const before = server.hs.services.notifier.waiting;
      const answer = server.api.get<SyncBody>(`/v3/sync?since=${since}&timeout=${timeout}`, { token: who.access_token });
      await until(() => server.hs.services.notifier.waiting === before + 1, 'the sync to wait');
      return { answer };
    };

    before(async () => {
      server = await startTestServer(engine);
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
      carol = await server.api.register('carol');
    });
    after(() => server.close());

    it('shows who types to the room at once, in initial and incremental syncs, until they stop', async () => {
      const roomId = await createRoom(alice);
      await join(bob, roomId);
      const start = await sync(bob);
      assert.equal(typists(start, roomId), undefined, 'no m.typing while nobody types');

      const waiting = await waitingSync(bob, start.next_batch);
      const typedAt = Date.now();
      assert.equal((await setTyping(alice, roomId, { typing: true, timeout: 30_000 })).status, 200);
      const woken = await waiting.answer;
      assert.ok(Date.now() - typedAt < 5000, `returned ${Date.now() - typedAt} ms after the typing, long before its 30 s timeout (the machine may be loaded)`);
      assert.deepEqual(typists(woken.body, roomId), [alice.user_id]);
      assert.deepEqual(typists(await sync(bob), roomId), [alice.user_id], 'an initial sync shows who types now');
      assert.deepEqual(typists(await sync(alice), roomId), [alice.user_id], 'the typist sees themself');

      assert.equal((await setTyping(bob, roomId, { typing: true, timeout: 30_000 })).status, 200);
      assert.deepEqual(typists(await sync(alice, { since: woken.body.next_batch }), roomId), [alice.user_id, bob.user_id].sort());

      const stopWait = await waitingSync(bob, (await sync(bob)).next_batch);
      assert.equal((await setTyping(alice, roomId, { typing: false })).status, 200);
      assert.deepEqual(typists((await stopWait.answer).body, roomId), [bob.user_id]);
      const stopped = await sync(alice);
      assert.equal((await setTyping(bob, roomId, { typing: false })).status, 200);
      assert.deepEqual(typists(await sync(alice, { since: stopped.next_batch }), roomId), [], 'an empty list when the last one stops');
      assert.equal(typists(await sync(alice), roomId), undefined);
      // Stopping again is no change: no new position.
      const idle = await sync(alice);
      assert.equal((await setTyping(bob, roomId, { typing: false })).status, 200);
      assert.equal((await sync(alice, { since: idle.next_batch })).next_batch, idle.next_batch);
    });

    it('expires on time, waking the waiting syncs, and renewing only moves the expiry', async () => {
      const roomId = await createRoom(alice);
      await join(bob, roomId);
      // Seconds rather than milliseconds: the test machine may be loaded.
      assert.equal((await setTyping(alice, roomId, { typing: true, timeout: 4000 })).status, 200);
      const typing = await sync(bob);
      assert.deepEqual(typists(typing, roomId), [alice.user_id]);
      // Renewing while typing tells no one: a long-poll is not woken by it.
      const renewWait = await waitingSync(bob, typing.next_batch, 300);
      const renewedAt = Date.now();
      assert.equal((await setTyping(alice, roomId, { typing: true, timeout: 5000 })).status, 200);
      const renewed = await renewWait.answer;
      assert.equal(renewed.body.rooms.join[roomId], undefined);
      assert.equal(renewed.body.next_batch, typing.next_batch);

      const expiryWait = await waitingSync(bob, typing.next_batch);
      const expired = await expiryWait.answer;
      const after = Date.now() - renewedAt;
      assert.deepEqual(typists(expired.body, roomId), []);
      assert.ok(after >= 4900 && after < 9000, `woken ${after} ms after the renewal, whose expiry was 5000 ms`);
      assert.equal(typists(await sync(bob), roomId), undefined);
    });

    it('caps the timeout at two minutes, as Synapse does, and defaults it to 30 s', async () => {
      const roomId = await createRoom(alice);
      const before = Date.now();
      assert.equal((await setTyping(alice, roomId, { typing: true, timeout: 3_600_000 })).status, 200);
      const row = await server.hs.services.store.typing.get(roomId, alice.user_id);
      const lasts = Number(row!.expires_ts) - before;
      assert.ok(lasts >= 119_000 && lasts <= 121_000, `typing lasts ${lasts} ms`);
      assert.equal((await setTyping(alice, roomId, { typing: false })).status, 200);
      assert.equal((await setTyping(alice, roomId, { typing: true })).status, 200);
      const defaulted = Number((await server.hs.services.store.typing.get(roomId, alice.user_id))!.expires_ts) - before;
      assert.ok(defaulted >= 29_000 && defaulted <= 31_000, `typing lasts ${defaulted} ms`);
      await setTyping(alice, roomId, { typing: false });
    });

    it('answers bad input with the right Matrix error, never a 500', async () => {
      const roomId = await createRoom(alice);
      await join(bob, roomId);
      const cases: [string, () => ReturnType<typeof setTyping>, number, string][] = [
        ["another user's typing", () => setTyping(alice, roomId, { typing: true, timeout: 1000 }, bob.user_id), 403, 'M_FORBIDDEN'],
        ['not joined', () => setTyping(carol, roomId, { typing: true, timeout: 1000 }), 403, 'M_FORBIDDEN'],
        ['unknown room', () => setTyping(alice, '!nowhere:test.local', { typing: true, timeout: 1000 }), 403, 'M_FORBIDDEN'],
        ['not a room ID', () => setTyping(alice, 'nowhere', { typing: true }), 400, 'M_INVALID_PARAM'],
        ['not a user ID', () => setTyping(alice, roomId, { typing: true }, 'alice'), 400, 'M_INVALID_PARAM'],
        ['no typing', () => setTyping(alice, roomId, { timeout: 1000 }), 400, 'M_MISSING_PARAM'],
        ['typing not a boolean', () => setTyping(alice, roomId, { typing: 'yes' }), 400, 'M_BAD_JSON'],
        ['timeout not a number', () => setTyping(alice, roomId, { typing: true, timeout: 'long' }), 400, 'M_BAD_JSON'],
        ['negative timeout', () => setTyping(alice, roomId, { typing: true, timeout: -5 }), 400, 'M_INVALID_PARAM'],
      ];
      for (const [what, call, status, errcode] of cases) {
        const res = await call();
        assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.errcode, errcode, what);
      }
      assert.equal(typists(await sync(bob), roomId), undefined, 'nothing was set');
    });

    it('follows the ephemeral filter', async () => {
      const roomId = await createRoom(alice);
      assert.equal((await setTyping(alice, roomId, { typing: true, timeout: 30_000 })).status, 200);
      assert.deepEqual(typists(await sync(alice, { filter: { room: { ephemeral: { types: ['m.typing'] } } } }), roomId), [alice.user_id]);
      assert.equal(typists(await sync(alice, { filter: { room: { ephemeral: { not_types: ['m.typing'] } } } }), roomId), undefined);
      assert.equal(typists(await sync(alice, { filter: { room: { ephemeral: { rooms: [] } } } }), roomId), undefined);
      await setTyping(alice, roomId, { typing: false });
    });

    it('expires typing set before a restart', async () => {
      const roomId = await createRoom(alice);
      await join(bob, roomId);
      assert.equal((await setTyping(alice, roomId, { typing: true, timeout: 700 })).status, 200);
      const start = await sync(bob);
      assert.deepEqual(typists(start, roomId), [alice.user_id]);
      await server.restart();
      const res = await server.api.get<SyncBody>(`/v3/sync?since=${start.next_batch}&timeout=5000`, { token: bob.access_token });
      assert.deepEqual(typists(res.body, roomId), []);
    });
  });
}

describe('typing across two homeserver processes sharing PostgreSQL', () => {
  const servers = twoProcessesOnePostgres();

  it('shows typing set through one process to a long-poll on the other at once, and its expiry', async () => {
    const { sync, createRoom, join } = roomActions(() => servers.first);
    const alice = await servers.first.api.register('alice');
    const bob = await servers.second.api.register('bob');
    const roomId = await createRoom(alice);
    await join(bob, roomId);
    const start = await sync(bob);
    const poll = (since: string) => servers.second.api.get<SyncBody>(`/v3/sync?since=${since}&timeout=30000`, { token: bob.access_token });
    let waiting = poll(start.next_batch);
    await until(() => servers.second.hs.services.notifier.waiting === 1, 'the sync to wait');
    const typedAt = Date.now();
    assert.equal((await servers.first.api.put(typingPath(roomId, alice.user_id), { typing: true, timeout: 3000 }, { token: alice.access_token })).status, 200);
    const woken = await waiting;
    assert.ok(Date.now() - typedAt < 5000, `returned ${Date.now() - typedAt} ms after the typing, long before its 30 s timeout (the machine may be loaded)`);
    assert.deepEqual(typists(woken.body, roomId), [alice.user_id]);

    waiting = poll(woken.body.next_batch);
    const expired = await waiting;
    const after = Date.now() - typedAt;
    assert.deepEqual(typists(expired.body, roomId), []);
    assert.ok(after >= 2900 && after < 7000, `expired ${after} ms after the typing, whose timeout was 3000 ms`);
  });
});
