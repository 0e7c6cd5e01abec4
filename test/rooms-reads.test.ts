import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';

type Session = { user_id: string; access_token: string; device_id: string };
type Event = {
  event_id: string;
  type: string;
  sender: string;
  state_key?: string;
  content: Record<string, unknown>;
  unsigned?: { transaction_id?: string; prev_content?: Record<string, unknown>; redacted_because?: Event; age?: number };
};
type Messages = { chunk: Event[]; start: string; end?: string; state?: Event[]; errcode?: string };
type Context = { event: Event; events_before: Event[]; events_after: Event[]; start: string; end: string; state: Event[]; errcode?: string };

for (const engine of HTTP_ENGINES) {
  describe(`room reads: events, state, /messages, /context, members and history visibility (${engine})`, () => {
    let server: TestServer;
    let alice: Session;
    let alice2: Session;
    let bob: Session;
    let carol: Session;
    let dave: Session;
    let txn = 0;

    const room = (roomId: string) => `/v3/rooms/${encodeURIComponent(roomId)}`;
    const createRoom = async (who: Session, body: Record<string, unknown> = {}) => {
      const res = await server.api.post<{ room_id: string }>('/v3/createRoom', body, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.room_id;
    };
    const send = async (who: Session, roomId: string, body: string, extra: Record<string, unknown> = {}, txnId = `t${++txn}`) => {
      const res = await server.api.put<{ event_id: string }>(`${room(roomId)}/send/m.room.message/${txnId}`, { msgtype: 'm.text', body, ...extra }, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.event_id;
    };
    const setState = async (who: Session, roomId: string, type: string, content: Record<string, unknown>, stateKey = '') => {
      const res = await server.api.put<{ event_id: string }>(`${room(roomId)}/state/${type}/${encodeURIComponent(stateKey)}`, content, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.event_id;
    };
    const invite = async (who: Session, roomId: string, target: Session) => {
      const res = await server.api.post(`${room(roomId)}/invite`, { user_id: target.user_id }, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const join = async (who: Session, roomId: string) => {
      const res = await server.api.post(`/v3/join/${encodeURIComponent(roomId)}`, {}, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const leave = async (who: Session, roomId: string) => {
      const res = await server.api.post(`${room(roomId)}/leave`, {}, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const messages = (who: Session, roomId: string, query: string) => server.api.get<Messages>(`${room(roomId)}/messages?${query}`, { token: who.access_token });
    /** Every event the user can page through in one direction, following `end` to the last page. */
    const pageAll = async (who: Session, roomId: string, dir: 'b' | 'f', limit: number, extra = '') => {
      const events: Event[] = [];
      let from: string | undefined;
      for (let i = 0; i < 100; i++) {
        const res = await messages(who, roomId, `dir=${dir}&limit=${limit}${from ? `&from=${encodeURIComponent(from)}` : ''}${extra}`);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.ok(res.body.chunk.length <= limit);
        events.push(...res.body.chunk);
        if (res.body.end === undefined) return events;
        from = res.body.end;
      }
      throw new Error('pagination did not end');
    };
    const bodies = (events: Event[]) => events.filter((e) => e.type === 'm.room.message').map((e) => e.content.body);

    before(async () => {
      // Many messages in a short time: the message rate limit would hold the test up.
      server = await startTestServer(engine, { rc_message: { per_second: 1000, burst_count: 1000 } });
      alice = await server.api.register('alice');
      alice2 = await server.api.login('alice');
      bob = await server.api.register('bob');
      carol = await server.api.register('carol');
      dave = await server.api.register('dave');
    });
    after(async () => server.close());

    it('pages backwards and forwards with limit, end tokens, `to` and a sync token as `from`', async () => {
      const roomId = await createRoom(alice, { name: 'paging' });
      for (let i = 0; i < 5; i++) await send(alice, roomId, `m${i}`);
      const sync = await server.api.get<{ next_batch: string }>('/v3/sync?timeout=0', { token: alice.access_token });
      assert.equal(sync.status, 200);
      for (let i = 5; i < 10; i++) await send(alice, roomId, `m${i}`);

      const first = await messages(alice, roomId, 'dir=b&limit=4');
      assert.equal(first.status, 200);
      assert.deepEqual(bodies(first.body.chunk), ['m9', 'm8', 'm7', 'm6']);
      assert.ok(first.body.end);
      const second = await messages(alice, roomId, `dir=b&limit=4&from=${encodeURIComponent(first.body.end)}`);
      assert.equal(second.body.start, first.body.end, 'start is the from given');
      assert.deepEqual(bodies(second.body.chunk), ['m5', 'm4', 'm3', 'm2']);

      const backwards = await pageAll(alice, roomId, 'b', 3);
      assert.deepEqual(bodies(backwards), ['m9', 'm8', 'm7', 'm6', 'm5', 'm4', 'm3', 'm2', 'm1', 'm0']);
      assert.equal(backwards[backwards.length - 1]!.type, 'm.room.create');
      const forwards = await pageAll(alice, roomId, 'f', 4);
      assert.equal(forwards[0]!.type, 'm.room.create');
      assert.deepEqual(
        forwards.map((e) => e.event_id),
        backwards.map((e) => e.event_id).reverse(),
      );
      // No event twice.
      assert.equal(new Set(forwards.map((e) => e.event_id)).size, forwards.length);

      // A sync next_batch as `from`: paging back from it starts at m4, the last event before it.
      const fromSync = await messages(alice, roomId, `dir=b&limit=3&from=${sync.body.next_batch}`);
      assert.equal(fromSync.status, 200, JSON.stringify(fromSync.body));
      assert.equal(fromSync.body.start, sync.body.next_batch);
      assert.deepEqual(bodies(fromSync.body.chunk), ['m4', 'm3', 'm2']);
      const forwardFromSync = await messages(alice, roomId, `dir=f&limit=3&from=${sync.body.next_batch}`);
      assert.deepEqual(bodies(forwardFromSync.body.chunk), ['m5', 'm6', 'm7']);

      // `to`: from the end back to the first page's end token gives that page's events and stops there.
      const bounded = await messages(alice, roomId, `dir=b&limit=50&to=${encodeURIComponent(first.body.end)}`);
      assert.deepEqual(bodies(bounded.body.chunk), ['m9', 'm8', 'm7', 'm6']);
      assert.equal(bounded.body.end, undefined, 'nothing more before `to`');
      const boundedForwards = await messages(alice, roomId, `dir=f&limit=50&from=${encodeURIComponent(second.body.end!)}&to=${encodeURIComponent(first.body.end)}`);
      assert.deepEqual(bodies(boundedForwards.body.chunk), ['m2', 'm3', 'm4', 'm5']);
      assert.equal(boundedForwards.body.end, undefined);

      // Paging forwards from the live end finds nothing, and says so.
      const live = await messages(alice, roomId, `dir=f&limit=5&from=${encodeURIComponent(first.body.start)}`);
      assert.deepEqual(live.body.chunk, []);
      assert.equal(live.body.end, undefined);
      // A forward page that reaches the newest event still ends with a token: later events follow it.
      const tail = await messages(alice, roomId, `dir=f&limit=50&from=${encodeURIComponent(second.body.end!)}`);
      assert.deepEqual(bodies(tail.body.chunk), ['m2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8', 'm9']);
      assert.ok(tail.body.end, JSON.stringify(tail.body));
      const nothingYet = await messages(alice, roomId, `dir=f&from=${encodeURIComponent(tail.body.end)}`);
      assert.deepEqual(nothingYet.body.chunk, []);
      assert.equal(nothingYet.body.end, undefined);
      await send(alice, roomId, 'm10');
      const later = await messages(alice, roomId, `dir=f&from=${encodeURIComponent(tail.body.end)}`);
      assert.deepEqual(bodies(later.body.chunk), ['m10']);
      assert.ok(later.body.end);

      // The default limit is 10.
      const defaults = await messages(alice, roomId, 'dir=b');
      assert.equal(defaults.body.chunk.length, 10);
    });

    it('serves redacted events redacted, prev_content on state changes, and transaction IDs only to the sending device', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await join(bob, roomId);
      const secret = await send(alice, roomId, 'oops', {}, 'redact-me');
      const redact = await server.api.put<{ event_id: string }>(`${room(roomId)}/redact/${encodeURIComponent(secret)}/r1`, { reason: 'typo' }, { token: alice.access_token });
      assert.equal(redact.status, 200, JSON.stringify(redact.body));
      const kept = await send(alice, roomId, 'hello', {}, 'my-txn');

      const redacted = await server.api.get<Event>(`${room(roomId)}/event/${encodeURIComponent(secret)}`, { token: bob.access_token });
      assert.equal(redacted.status, 200);
      assert.deepEqual(redacted.body.content, {});
      assert.equal(redacted.body.unsigned?.redacted_because?.event_id, redact.body.event_id);
      assert.equal(redacted.body.unsigned?.redacted_because?.type, 'm.room.redaction');

      const mine = await server.api.get<Event>(`${room(roomId)}/event/${encodeURIComponent(kept)}`, { token: alice.access_token });
      assert.equal(mine.body.unsigned?.transaction_id, 'my-txn');
      assert.equal(mine.body.content.body, 'hello');
      const otherDevice = await server.api.get<Event>(`${room(roomId)}/event/${encodeURIComponent(kept)}`, { token: alice2.access_token });
      assert.equal(otherDevice.status, 200);
      assert.equal(otherDevice.body.unsigned?.transaction_id, undefined);
      const otherUser = await server.api.get<Event>(`${room(roomId)}/event/${encodeURIComponent(kept)}`, { token: bob.access_token });
      assert.equal(otherUser.body.unsigned?.transaction_id, undefined);

      // In /messages too: the redaction, the transaction ID to its device only.
      const page = await messages(alice, roomId, 'dir=b&limit=3');
      const inPage = page.body.chunk.find((e) => e.event_id === kept)!;
      assert.equal(inPage.unsigned?.transaction_id, 'my-txn');
      const redactedInPage = page.body.chunk.find((e) => e.event_id === secret)!;
      assert.deepEqual(redactedInPage.content, {});
      assert.ok(redactedInPage.unsigned?.redacted_because);
      const bobsPage = await messages(bob, roomId, 'dir=b&limit=3');
      assert.equal(bobsPage.body.chunk.find((e) => e.event_id === kept)!.unsigned?.transaction_id, undefined);

      await setState(alice, roomId, 'm.room.topic', { topic: 'one' });
      const second = await setState(alice, roomId, 'm.room.topic', { topic: 'two' });
      const topic = await server.api.get<Event>(`${room(roomId)}/event/${encodeURIComponent(second)}`, { token: bob.access_token });
      assert.deepEqual(topic.body.content, { topic: 'two' });
      assert.deepEqual(topic.body.unsigned?.prev_content, { topic: 'one' });
      const latest = await messages(bob, roomId, 'dir=b&limit=1');
      assert.deepEqual(latest.body.chunk[0]!.unsigned?.prev_content, { topic: 'one' });

      // State: the whole, one event's content, or (format=event) the event.
      const state = await server.api.get<Event[]>(`${room(roomId)}/state`, { token: bob.access_token });
      assert.equal(state.status, 200);
      assert.deepEqual(state.body.find((e) => e.type === 'm.room.topic')!.content, { topic: 'two' });
      assert.deepEqual(
        state.body.filter((e) => e.type === 'm.room.member').map((e) => e.state_key).sort(),
        [alice.user_id, bob.user_id].sort(),
      );
      assert.ok(state.body.some((e) => e.type === 'm.room.create'));
      const content = await server.api.get(`${room(roomId)}/state/m.room.topic/`, { token: bob.access_token });
      assert.equal(content.status, 200);
      assert.deepEqual(content.body, { topic: 'two' });
      const asEvent = (await server.api.get<Event>(`${room(roomId)}/state/m.room.topic/?format=event`, { token: bob.access_token })).body;
      assert.equal(asEvent.event_id, second);
      assert.deepEqual(asEvent.unsigned?.prev_content, { topic: 'one' });
      // The empty state key may go without its slash.
      const short = await server.api.get(`${room(roomId)}/state/m.room.topic`, { token: bob.access_token });
      assert.equal(short.status, 200);
      assert.deepEqual(short.body, { topic: 'two' });
      const member = await server.api.get(`${room(roomId)}/state/m.room.member/${encodeURIComponent(bob.user_id)}`, { token: bob.access_token });
      assert.equal(member.body.membership, 'join');
      const absent = await server.api.get(`${room(roomId)}/state/m.room.member/${encodeURIComponent(carol.user_id)}`, { token: bob.access_token });
      assert.equal(absent.status, 404);
      assert.equal(absent.body.errcode, 'M_NOT_FOUND');
      const badFormat = await server.api.get(`${room(roomId)}/state/m.room.topic/?format=xml`, { token: bob.access_token });
      assert.equal(badFormat.status, 400);
      assert.equal(badFormat.body.errcode, 'M_INVALID_PARAM');
    });

    it('gives the context around an event, with tokens to page on and the state', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat', topic: 'context' });
      await join(bob, roomId);
      const ids: string[] = [];
      for (let i = 0; i < 9; i++) ids.push(await send(i % 2 === 0 ? alice : bob, roomId, `c${i}`));
      const res = await server.api.get<Context>(`${room(roomId)}/context/${encodeURIComponent(ids[4]!)}?limit=4`, { token: alice.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.event.event_id, ids[4]);
      assert.deepEqual(bodies(res.body.events_before), ['c3', 'c2']);
      assert.deepEqual(bodies(res.body.events_after), ['c5', 'c6']);
      assert.deepEqual(res.body.state.find((e) => e.type === 'm.room.topic')?.content, { topic: 'context' });
      assert.deepEqual(
        res.body.state.filter((e) => e.type === 'm.room.member').map((e) => e.state_key).sort(),
        [alice.user_id, bob.user_id].sort(),
      );
      const older = await messages(alice, roomId, `dir=b&limit=2&from=${encodeURIComponent(res.body.start)}`);
      assert.deepEqual(bodies(older.body.chunk), ['c1', 'c0']);
      const newer = await messages(alice, roomId, `dir=f&limit=2&from=${encodeURIComponent(res.body.end)}`);
      assert.deepEqual(bodies(newer.body.chunk), ['c7', 'c8']);

      // limit=0: the event alone.
      const bare = await server.api.get<Context>(`${room(roomId)}/context/${encodeURIComponent(ids[4]!)}?limit=0`, { token: alice.access_token });
      assert.deepEqual([bare.body.events_before.length, bare.body.events_after.length], [0, 0]);
      assert.equal(bare.body.event.event_id, ids[4]);

      // A filter applies to the events around, not to the event; lazy loading keeps the members of their senders.
      const filter = encodeURIComponent(JSON.stringify({ senders: [bob.user_id], lazy_load_members: true }));
      const filtered = await server.api.get<Context>(`${room(roomId)}/context/${encodeURIComponent(ids[4]!)}?limit=4&filter=${filter}`, { token: alice.access_token });
      assert.equal(filtered.status, 200, JSON.stringify(filtered.body));
      assert.equal(filtered.body.event.sender, alice.user_id);
      assert.deepEqual(bodies(filtered.body.events_before), ['c3', 'c1']);
      assert.deepEqual(bodies(filtered.body.events_after), ['c5', 'c7']);

      const unknown = await server.api.get(`${room(roomId)}/context/${encodeURIComponent('$nosuchevent')}`, { token: alice.access_token });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.errcode, 'M_NOT_FOUND');
    });

    it('filters /messages by type, sender and url, and lazy-loads the members of the senders', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await join(bob, roomId);
      await join(carol, roomId);
      await send(alice, roomId, 'a-plain');
      await send(bob, roomId, 'b-image', { msgtype: 'm.image', url: 'mxc://localhost/abc' });
      await send(bob, roomId, 'b-plain');
      const types = await messages(alice, roomId, `dir=b&limit=20&filter=${encodeURIComponent(JSON.stringify({ types: ['m.room.message'] }))}`);
      assert.equal(types.status, 200, JSON.stringify(types.body));
      assert.ok(types.body.chunk.every((e) => e.type === 'm.room.message'));
      assert.deepEqual(bodies(types.body.chunk), ['b-plain', 'b-image', 'a-plain']);
      assert.equal(types.body.state, undefined);
      const notBob = await messages(alice, roomId, `dir=b&limit=20&filter=${encodeURIComponent(JSON.stringify({ types: ['m.room.*'], not_senders: [bob.user_id] }))}`);
      assert.ok(notBob.body.chunk.length > 0);
      assert.ok(notBob.body.chunk.every((e) => e.sender !== bob.user_id));
      const withUrl = await messages(alice, roomId, `dir=b&limit=20&filter=${encodeURIComponent(JSON.stringify({ contains_url: true }))}`);
      assert.deepEqual(bodies(withUrl.body.chunk), ['b-image']);
      assert.equal(withUrl.body.chunk.length, 1);

      const lazy = await messages(alice, roomId, `dir=b&limit=2&filter=${encodeURIComponent(JSON.stringify({ lazy_load_members: true }))}`);
      assert.deepEqual(bodies(lazy.body.chunk), ['b-plain', 'b-image']);
      assert.deepEqual(
        lazy.body.state?.map((e) => [e.type, e.state_key]),
        [['m.room.member', bob.user_id]],
      );
      // A filter that keeps few events still pages on: an empty chunk with an end token is allowed, the
      // history is read to its start in the end, and only matching events come.
      const sparse = await pageAll(alice, roomId, 'b', 1, `&filter=${encodeURIComponent(JSON.stringify({ types: ['m.room.create'] }))}`);
      assert.deepEqual(
        sparse.map((e) => e.type),
        ['m.room.create'],
      );
    });

    it('lists members now and at an earlier point, with membership filters, joined members and joined rooms', async () => {
      const roomId = await createRoom(alice, { preset: 'private_chat' });
      const before = await messages(alice, roomId, 'dir=b&limit=1');
      const early = before.body.start;
      await invite(alice, roomId, bob);
      await join(bob, roomId);
      await invite(alice, roomId, carol);

      const members = async (who: Session, query = '') => server.api.get<{ chunk: Event[]; errcode?: string }>(`${room(roomId)}/members${query}`, { token: who.access_token });
      const summary = (chunk: Event[]) => chunk.map((e) => `${e.state_key}=${e.content.membership}`).sort();
      const now = await members(alice);
      assert.equal(now.status, 200);
      assert.deepEqual(summary(now.body.chunk), [`${alice.user_id}=join`, `${bob.user_id}=join`, `${carol.user_id}=invite`].sort());
      const then = await members(alice, `?at=${encodeURIComponent(early)}`);
      assert.equal(then.status, 200, JSON.stringify(then.body));
      assert.deepEqual(summary(then.body.chunk), [`${alice.user_id}=join`]);

      assert.deepEqual(summary((await members(bob, '?membership=join')).body.chunk), [`${alice.user_id}=join`, `${bob.user_id}=join`].sort());
      assert.deepEqual(summary((await members(bob, '?not_membership=join')).body.chunk), [`${carol.user_id}=invite`]);
      assert.deepEqual(summary((await members(bob, '?membership=invite')).body.chunk), [`${carol.user_id}=invite`]);
      // Both together are an "or" (the spec's words): membership is `invite`, or is not `join`.
      assert.deepEqual(summary((await members(bob, '?membership=invite&not_membership=join')).body.chunk), [`${carol.user_id}=invite`]);
      assert.deepEqual(summary((await members(bob, '?membership=join&not_membership=leave')).body.chunk), summary(now.body.chunk));
      assert.deepEqual(summary((await members(bob, '?membership=ban&not_membership=invite')).body.chunk), [`${alice.user_id}=join`, `${bob.user_id}=join`].sort());
      const badMembership = await members(bob, '?membership=member');
      assert.equal(badMembership.status, 400);
      assert.equal(badMembership.body.errcode, 'M_INVALID_PARAM');
      const badAt = await members(bob, '?at=nonsense');
      assert.equal(badAt.status, 400);
      assert.equal(badAt.body.errcode, 'M_INVALID_PARAM');

      const joined = await server.api.get<{ joined: Record<string, { display_name?: string }> }>(`${room(roomId)}/joined_members`, { token: bob.access_token });
      assert.equal(joined.status, 200);
      assert.deepEqual(Object.keys(joined.body.joined).sort(), [alice.user_id, bob.user_id].sort());
      assert.equal(joined.body.joined[alice.user_id]!.display_name, 'alice');

      const bobsRooms = await server.api.get<{ joined_rooms: string[] }>('/v3/joined_rooms', { token: bob.access_token });
      assert.ok(bobsRooms.body.joined_rooms.includes(roomId));
      const carolsRooms = await server.api.get<{ joined_rooms: string[] }>('/v3/joined_rooms', { token: carol.access_token });
      assert.equal(carolsRooms.status, 200);
      assert.ok(!carolsRooms.body.joined_rooms.includes(roomId), 'an invite is not a joined room');

      // Someone invited but not joined, or never in the room, may not read it.
      for (const who of [carol, dave]) {
        for (const path of ['/members', '/joined_members', '/state', '/messages?dir=b']) {
          const res = await server.api.get(`${room(roomId)}${path}`, { token: who.access_token });
          assert.equal(res.status, 403, `${path}: ${JSON.stringify(res.body)}`);
          assert.equal(res.body.errcode, 'M_FORBIDDEN');
        }
      }
    });

    it('applies history visibility: joined, shared, invited', async () => {
      const scenario = async (visibility: string) => {
        const roomId = await createRoom(alice, { preset: 'private_chat', initial_state: [{ type: 'm.room.history_visibility', content: { history_visibility: visibility } }] });
        await send(alice, roomId, 'before-invite');
        await invite(alice, roomId, bob);
        await send(alice, roomId, 'while-invited');
        await join(bob, roomId);
        await send(alice, roomId, 'after-join');
        const seen = await pageAll(bob, roomId, 'b', 2);
        const seenForwards = await pageAll(bob, roomId, 'f', 3);
        assert.deepEqual(
          seenForwards.map((e) => e.event_id),
          seen.map((e) => e.event_id).reverse(),
        );
        return { roomId, seen };
      };

      const joinedRoom = await scenario('joined');
      assert.deepEqual(bodies(joinedRoom.seen), ['after-join']);
      assert.ok(joinedRoom.seen.some((e) => e.type === 'm.room.member' && e.state_key === bob.user_id && e.content.membership === 'join'), 'his own join');
      // Not even his invite: under `joined`, being invited shows nothing.
      assert.ok(!joinedRoom.seen.some((e) => e.type === 'm.room.member' && e.content.membership === 'invite'));
      // (The room's first events, sent before any history_visibility was set, were `shared`: he sees them.)
      assert.ok(joinedRoom.seen.some((e) => e.type === 'm.room.create'));
      const hidden = (await messages(alice, joinedRoom.roomId, 'dir=b&limit=20')).body.chunk.find((e) => e.content.body === 'before-invite')!;
      const notVisible = await server.api.get(`${room(joinedRoom.roomId)}/event/${encodeURIComponent(hidden.event_id)}`, { token: bob.access_token });
      assert.equal(notVisible.status, 404);
      assert.equal(notVisible.body.errcode, 'M_NOT_FOUND');
      const noContext = await server.api.get(`${room(joinedRoom.roomId)}/context/${encodeURIComponent(hidden.event_id)}`, { token: bob.access_token });
      assert.equal(noContext.status, 404);
      // Alice, joined all along, sees it.
      const visible = await server.api.get(`${room(joinedRoom.roomId)}/event/${encodeURIComponent(hidden.event_id)}`, { token: alice.access_token });
      assert.equal(visible.status, 200);

      const sharedRoom = await scenario('shared');
      assert.deepEqual(bodies(sharedRoom.seen), ['after-join', 'while-invited', 'before-invite']);
      assert.equal(sharedRoom.seen[sharedRoom.seen.length - 1]!.type, 'm.room.create');

      const invitedRoom = await scenario('invited');
      assert.deepEqual(bodies(invitedRoom.seen), ['after-join', 'while-invited']);
      assert.ok(invitedRoom.seen.some((e) => e.type === 'm.room.member' && e.state_key === bob.user_id && e.content.membership === 'invite'), 'his invite');
    });

    it('lets anyone read a world_readable room, and only its world_readable part', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await send(alice, roomId, 'shared-era');
      await setState(alice, roomId, 'm.room.history_visibility', { history_visibility: 'world_readable' });
      const open = await send(alice, roomId, 'open-era');
      const res = await messages(dave, roomId, 'dir=b&limit=50');
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(bodies(res.body.chunk), ['open-era']);
      // The change to world_readable is visible (the setting after it allows it).
      assert.ok(res.body.chunk.some((e) => e.type === 'm.room.history_visibility'));
      assert.equal((await server.api.get(`${room(roomId)}/event/${encodeURIComponent(open)}`, { token: dave.access_token })).status, 200);
      const state = await server.api.get<Event[]>(`${room(roomId)}/state`, { token: dave.access_token });
      assert.equal(state.status, 200);
      assert.ok(state.body.some((e) => e.type === 'm.room.history_visibility' && e.content.history_visibility === 'world_readable'));
      const members = await server.api.get<{ chunk: Event[] }>(`${room(roomId)}/members`, { token: dave.access_token });
      assert.deepEqual(
        members.body.chunk.map((e) => e.state_key),
        [alice.user_id],
      );
      const context = await server.api.get<Context>(`${room(roomId)}/context/${encodeURIComponent(open)}`, { token: dave.access_token });
      assert.equal(context.status, 200);
      assert.ok(!bodies(context.body.events_before).includes('shared-era'));

      // Back to joined: what follows is hidden from strangers again, and the room is closed to them.
      await setState(alice, roomId, 'm.room.history_visibility', { history_visibility: 'joined' });
      await send(alice, roomId, 'closed-era');
      const closed = await messages(dave, roomId, 'dir=b&limit=50');
      assert.equal(closed.status, 403);
    });

    it('shows a user who left what they could see up to their leave, and the state then', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat', topic: 'old topic' });
      await join(bob, roomId);
      await send(alice, roomId, 'while-there');
      await leave(bob, roomId);
      const later = await send(alice, roomId, 'after-leave');
      await setState(alice, roomId, 'm.room.topic', { topic: 'new topic' });
      await join(carol, roomId);

      const back = await messages(bob, roomId, 'dir=b&limit=50');
      assert.equal(back.status, 200, JSON.stringify(back.body));
      assert.equal(back.body.chunk[0]!.type, 'm.room.member', 'starts at his leave');
      assert.equal(back.body.chunk[0]!.content.membership, 'leave');
      assert.deepEqual(bodies(back.body.chunk), ['while-there']);
      const forwards = await pageAll(bob, roomId, 'f', 4);
      assert.equal(forwards[forwards.length - 1]!.content.membership, 'leave');
      assert.ok(!bodies(forwards).includes('after-leave'));
      const hidden = await server.api.get(`${room(roomId)}/event/${encodeURIComponent(later)}`, { token: bob.access_token });
      assert.equal(hidden.status, 404);

      const state = await server.api.get<Event[]>(`${room(roomId)}/state`, { token: bob.access_token });
      assert.equal(state.status, 200);
      assert.deepEqual(state.body.find((e) => e.type === 'm.room.topic')!.content, { topic: 'old topic' });
      assert.equal(state.body.find((e) => e.type === 'm.room.member' && e.state_key === bob.user_id)!.content.membership, 'leave');
      assert.ok(!state.body.some((e) => e.state_key === carol.user_id));
      const topic = await server.api.get(`${room(roomId)}/state/m.room.topic/`, { token: bob.access_token });
      assert.deepEqual(topic.body, { topic: 'old topic' });
      const members = await server.api.get<{ chunk: Event[] }>(`${room(roomId)}/members`, { token: bob.access_token });
      assert.ok(!members.body.chunk.some((e) => e.state_key === carol.user_id));
      const joined = await server.api.get<{ joined: Record<string, unknown> }>(`${room(roomId)}/joined_members`, { token: bob.access_token });
      assert.deepEqual(Object.keys(joined.body.joined), [alice.user_id]);
      // A token past his leave does not show more.
      const sync = await server.api.get<{ next_batch: string }>('/v3/sync?timeout=0', { token: alice.access_token });
      const fromNow = await messages(bob, roomId, `dir=b&limit=50&from=${sync.body.next_batch}`);
      assert.ok(!bodies(fromNow.body.chunk).includes('after-leave'));
      const membersNow = await server.api.get<{ chunk: Event[] }>(`${room(roomId)}/members?at=${sync.body.next_batch}`, { token: bob.access_token });
      assert.ok(!membersNow.body.chunk.some((e) => e.state_key === carol.user_id));

      const rooms = await server.api.get<{ joined_rooms: string[] }>('/v3/joined_rooms', { token: bob.access_token });
      assert.ok(!rooms.body.joined_rooms.includes(roomId));
      // After forgetting the room, it is closed to him.
      assert.equal((await server.api.post(`${room(roomId)}/forget`, {}, { token: bob.access_token })).status, 200);
      assert.equal((await messages(bob, roomId, 'dir=b')).status, 403);
    });

    it('answers the room initialSync: state, the latest events in order, membership, visibility, presence and account data', async () => {
      type RoomInitialSync = { room_id: string; membership?: string; visibility: string; state: Event[]; messages: { chunk: Event[]; start: string; end: string }; presence: { sender: string; content: { presence: string } }[]; account_data: { type: string; content: Record<string, unknown> }[] };
      const roomId = await createRoom(alice, { preset: 'public_chat', topic: 'Initial', visibility: 'public' });
      await join(bob, roomId);
      for (const body of ['one', 'two', 'three']) await send(alice, roomId, body);
      const note = await server.api.put(`/v3/user/${encodeURIComponent(alice.user_id)}/rooms/${encodeURIComponent(roomId)}/account_data/org.example.note`, { text: 'mine' }, { token: alice.access_token });
      assert.equal(note.status, 200);
      const initial = (who: Session, query = '') => server.api.get<RoomInitialSync>(`${room(roomId)}/initialSync${query}`, { token: who.access_token });
      const res = await initial(alice, '?limit=2');
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.room_id, roomId);
      assert.equal(res.body.membership, 'join');
      assert.equal(res.body.visibility, 'public');
      assert.deepEqual(bodies(res.body.messages.chunk), ['two', 'three']);
      assert.ok(res.body.state.some((e) => e.type === 'm.room.topic' && e.content.topic === 'Initial'));
      assert.deepEqual(res.body.presence.map((p) => p.sender).sort(), [alice.user_id, bob.user_id].sort());
      assert.deepEqual(res.body.account_data, [{ type: 'org.example.note', content: { text: 'mine' } }]);
      // Its tokens page on through /messages: back from start to the earlier events, forward from end to nothing yet.
      const earlier = await messages(alice, roomId, `dir=b&limit=1&from=${encodeURIComponent(res.body.messages.start)}`);
      assert.deepEqual(bodies(earlier.body.chunk), ['one']);
      await send(alice, roomId, 'four');
      const later = await messages(alice, roomId, `dir=f&from=${encodeURIComponent(res.body.messages.end)}`);
      assert.deepEqual(bodies(later.body.chunk), ['four']);
      assert.deepEqual((await initial(alice, '?limit=0')).body.messages.chunk, []);
      // With the whole history in the chunk, start is the room's beginning: nothing before it.
      const whole = await initial(alice, '?limit=100');
      assert.equal(bodies(whole.body.messages.chunk).length, 4);
      const before = await messages(alice, roomId, `dir=b&from=${encodeURIComponent(whole.body.messages.start)}`);
      assert.deepEqual([before.status, before.body.chunk, before.body.end], [200, [], undefined]);
      // A departed member sees the room as they left it; a stranger is refused.
      await leave(bob, roomId);
      await send(alice, roomId, 'after bob');
      const departed = await initial(bob);
      assert.equal(departed.body.membership, 'leave');
      assert.ok(!bodies(departed.body.messages.chunk).includes('after bob'));
      assert.deepEqual(departed.body.presence, [], 'no presence once departed');
      assert.equal((await initial(dave)).status, 403);
      assert.equal((await server.api.get(`${room(roomId)}/initialSync?limit=x`, { token: alice.access_token })).status, 400);
    });

    it('refuses bad input with the right errors, never a 500', async () => {
      const roomId = await createRoom(alice);
      await send(alice, roomId, 'x');
      const expect = async (path: string, status: number, errcode: string, who = alice) => {
        const res = await server.api.get(path, { token: who.access_token });
        assert.equal(res.status, status, `${path}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.errcode, errcode, path);
      };
      await expect(`${room(roomId)}/event/${encodeURIComponent('$unknown')}`, 404, 'M_NOT_FOUND');
      await expect(`${room(roomId)}/messages?dir=b&from=bogus`, 400, 'M_INVALID_PARAM');
      await expect(`${room(roomId)}/messages?dir=b&to=t1-x`, 400, 'M_INVALID_PARAM');
      await expect(`${room(roomId)}/messages?dir=b&from=m1_1_2`, 400, 'M_INVALID_PARAM');
      await expect(`${room(roomId)}/messages?dir=x`, 400, 'M_INVALID_PARAM');
      await expect(`${room(roomId)}/messages`, 400, 'M_MISSING_PARAM');
      await expect(`${room(roomId)}/messages?dir=b&limit=-1`, 400, 'M_INVALID_PARAM');
      await expect(`${room(roomId)}/messages?dir=b&limit=ten`, 400, 'M_INVALID_PARAM');
      await expect(`${room(roomId)}/messages?dir=b&filter=${encodeURIComponent('{nope')}`, 400, 'M_NOT_JSON');
      await expect(`${room(roomId)}/messages?dir=b&filter=${encodeURIComponent('[1]')}`, 400, 'M_BAD_JSON');
      await expect(`${room(roomId)}/messages?dir=b&filter=${encodeURIComponent('{"types":"m.room.message"}')}`, 400, 'M_BAD_JSON');
      await expect(`${room(roomId)}/context/${encodeURIComponent('$unknown')}`, 404, 'M_NOT_FOUND');
      await expect(`${room(roomId)}/context/x?limit=abc`, 400, 'M_INVALID_PARAM');
      await expect(`${room(roomId)}/state/m.room.nothing/`, 404, 'M_NOT_FOUND');
      await expect(`${room('!unknown:localhost')}/messages?dir=b`, 403, 'M_FORBIDDEN');
      await expect(`${room('!unknown:localhost')}/state`, 403, 'M_FORBIDDEN');
      // GET /event answers 404 also for an event the user may not read (the spec's only error for it).
      await expect(`${room('!unknown:localhost')}/event/${encodeURIComponent('$x')}`, 404, 'M_NOT_FOUND');
      await expect(`${room('not-a-room')}/messages?dir=b`, 400, 'M_INVALID_PARAM');
      await expect(`${room(roomId)}/messages?dir=b`, 403, 'M_FORBIDDEN', dave);
      await expect(`${room(roomId)}/event/${encodeURIComponent('$x')}`, 404, 'M_NOT_FOUND', dave);
      const real = await send(alice, roomId, 'members only');
      await expect(`${room(roomId)}/event/${encodeURIComponent(real)}`, 404, 'M_NOT_FOUND', dave);
      await expect(`${room(roomId)}/context/${encodeURIComponent('$x')}`, 403, 'M_FORBIDDEN', dave);
      await expect(`${room(roomId)}/state/m.room.create/`, 403, 'M_FORBIDDEN', dave);
      // An event of another room is not found through this one.
      const other = await createRoom(alice);
      const elsewhere = await send(alice, other, 'elsewhere');
      await expect(`${room(roomId)}/event/${encodeURIComponent(elsewhere)}`, 404, 'M_NOT_FOUND');
      // Huge limits are capped, not refused.
      const huge = await messages(alice, roomId, 'dir=b&limit=999999999');
      assert.equal(huge.status, 200);
      assert.equal(huge.body.end, undefined);
    });
  });
}
