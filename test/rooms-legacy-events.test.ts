import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

type Session = { user_id: string; access_token: string; device_id: string };
type Event = {
  event_id: string;
  type: string;
  room_id: string;
  sender: string;
  user_id?: string;
  state_key?: string;
  content: Record<string, unknown>;
  unsigned?: Record<string, unknown>;
};
type Stream = { chunk: Event[]; start: string; end: string; errcode?: string };
type Room = { room_id: string; membership?: string; visibility: string; state: Event[]; messages: { chunk: Event[]; start: string; end: string }; presence: unknown[]; account_data: unknown[]; invite?: Event };
type InitialSync = { end: string; rooms: Room[]; presence: { type: string; content: { user_id: string; presence: string } }[]; account_data: { type: string; content: Record<string, unknown> }[] };

for (const engine of ENGINES) {
  describe(`legacy event stream: /events, /initialSync, room initialSync, /events/{eventId} (${engine})`, () => {
    let server: TestServer;
    let alice: Session;
    let bob: Session;
    let carol: Session;
    let txn = 0;

    const enc = encodeURIComponent;
    const room = (roomId: string) => `/v3/rooms/${enc(roomId)}`;
    const createRoom = async (who: Session, body: Record<string, unknown> = {}) => {
      const res = await server.api.post<{ room_id: string }>('/v3/createRoom', body, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.room_id;
    };
    const send = async (who: Session, roomId: string, body: string) => {
      const res = await server.api.put<{ event_id: string }>(`${room(roomId)}/send/m.room.message/t${++txn}`, { msgtype: 'm.text', body }, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.event_id;
    };
    const setState = async (who: Session, roomId: string, type: string, content: Record<string, unknown>) => {
      const res = await server.api.put(`${room(roomId)}/state/${type}/`, content, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const post = async (who: Session, path: string, body: Record<string, unknown> = {}) => {
      const res = await server.api.post(path, body, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const events = (who: Session, query: Record<string, string | number>) =>
      server.api.get<Stream>(`/v3/events?${new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]))}`, { token: who.access_token });
    /** /events read without the spec's check: receipts, typing, account data and presence are no ClientEvents, which its schema for the chunk names. */
    const rawEvents = async (who: Session, query: Record<string, string | number>) => {
      const params = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]));
      const res = await fetch(`${server.api.baseUrl}/_matrix/client/v3/events?${params}`, { headers: { authorization: `Bearer ${who.access_token}` } });
      assert.equal(res.status, 200);
      return (await res.json()) as { chunk: (Record<string, unknown> & { type: string; content: Record<string, unknown> })[]; end: string };
    };
    /** A token for "now" in the user's stream. */
    const now = async (who: Session, roomId?: string) => {
      const res = await events(who, { timeout: 0, ...(roomId ? { room_id: roomId } : {}) });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.end;
    };
    const bodies = (list: Event[]) => list.filter((e) => e.type === 'm.room.message').map((e) => e.content.body);

    before(async () => {
      server = await startTestServer(engine, { rc_message: { per_second: 1000, burst_count: 1000 }, allow_guest_access: true });
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
      carol = await server.api.register('carol');
    });
    after(() => server?.close());

    it('wakes a waiting /events at once for another user\'s message, in the old event format', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await post(bob, `/v3/join/${enc(roomId)}`);
      const from = await now(bob);
      // Reading the stream marks him online, as a sync does.
      const status = await server.api.get<{ presence: string }>(`/v3/presence/${enc(bob.user_id)}/status`, { token: alice.access_token });
      assert.equal(status.body.presence, 'online');
      const notifier = server.hs.services.notifier;
      const before = notifier.waiting;
      let answered = false;
      const waiting = events(bob, { from, timeout: 20_000 });
      void waiting.then(() => (answered = true));
      await until(() => notifier.waiting > before, 'the /events request to wait');
      assert.equal(answered, false, 'it really waited');
      const sentAt = Date.now();
      const eventId = await send(alice, roomId, 'wake up');
      const res = await waiting;
      const took = Date.now() - sentAt;
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.ok(took < 2000, `answered ${took} ms after the message, not at the timeout`);
      const message = res.body.chunk.find((e) => e.event_id === eventId);
      assert.ok(message, JSON.stringify(res.body.chunk));
      assert.equal(message.room_id, roomId);
      assert.equal(message.sender, alice.user_id);
      assert.equal(message.user_id, alice.user_id, 'the old format names the sender as user_id too');
      assert.equal(res.body.start, from);
      assert.notEqual(res.body.end, from);
      // With nothing new, a short timeout answers an empty chunk at its end, and the same token back.
      const quiet = await events(bob, { from: res.body.end, timeout: 200 });
      assert.deepEqual([quiet.status, quiet.body.chunk, quiet.body.end], [200, [], res.body.end]);
      // Without a timeout it answers at once.
      const askedAt = Date.now();
      const unasked = await events(bob, { from: res.body.end });
      assert.deepEqual([unasked.status, unasked.body.chunk], [200, []]);
      assert.ok(Date.now() - askedAt < 1000);
    });

    it('continues from each answer\'s end without losing or repeating an event, also from an initialSync end', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await post(bob, `/v3/join/${enc(roomId)}`);
      const other = await createRoom(alice, { preset: 'public_chat' });
      await post(bob, `/v3/join/${enc(other)}`);
      let from = await now(bob);
      const sent: string[] = [];
      for (let i = 0; i < 7; i++) sent.push(await send(alice, i % 2 === 0 ? roomId : other, `m${i}`));
      const seen: string[] = [];
      for (let round = 0; round < 20; round++) {
        const res = await events(bob, { from, timeout: 0, limit: 3 });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.ok(res.body.chunk.length <= 3, 'the limit holds');
        if (res.body.chunk.length === 0) break;
        seen.push(...res.body.chunk.map((e) => e.event_id));
        from = res.body.end;
      }
      assert.deepEqual(seen, sent, 'every message once, in order, across the two rooms');

      // initialSync's end is an /events token (and a /sync since token).
      const initial = await server.api.get<InitialSync>('/v3/initialSync?limit=2', { token: bob.access_token });
      assert.equal(initial.status, 200, JSON.stringify(initial.body));
      const snapshot = initial.body.rooms.find((r) => r.room_id === roomId);
      assert.ok(snapshot);
      assert.equal(snapshot.membership, 'join');
      assert.deepEqual(bodies(snapshot.messages.chunk), ['m4', 'm6']);
      const later = await send(alice, roomId, 'after the snapshot');
      const next = await events(bob, { from: initial.body.end, timeout: 0 });
      assert.deepEqual(next.body.chunk.map((e) => e.event_id), [later]);
      const sync = await server.api.get(`/v3/sync?since=${enc(initial.body.end)}&timeout=0&set_presence=offline`, { token: bob.access_token });
      assert.equal(sync.status, 200, JSON.stringify(sync.body));
    });

    it('applies history visibility: a later joiner sees no earlier `joined` history, in initialSync or the stream', async () => {
      const roomId = await createRoom(alice, { preset: 'private_chat' });
      await setState(alice, roomId, 'm.room.history_visibility', { history_visibility: 'joined' });
      const from = await now(bob);
      await send(alice, roomId, 'before bob');
      await post(alice, `${room(roomId)}/invite`, { user_id: bob.user_id });
      await post(bob, `/v3/join/${enc(roomId)}`);
      await send(alice, roomId, 'after bob');

      const initial = await server.api.get<InitialSync>('/v3/initialSync?limit=20', { token: bob.access_token });
      const snapshot = initial.body.rooms.find((r) => r.room_id === roomId);
      assert.ok(snapshot);
      assert.deepEqual(bodies(snapshot.messages.chunk), ['after bob']);
      assert.ok(snapshot.state.some((e) => e.type === 'm.room.history_visibility'), 'the current state all the same');
      const roomInitial = await server.api.get<Room>(`${room(roomId)}/initialSync?limit=20`, { token: bob.access_token });
      assert.equal(roomInitial.status, 200, JSON.stringify(roomInitial.body));
      assert.deepEqual(bodies(roomInitial.body.messages.chunk), ['after bob']);
      // Alice sees both.
      const hers = await server.api.get<Room>(`${room(roomId)}/initialSync?limit=20`, { token: alice.access_token });
      assert.deepEqual(bodies(hers.body.messages.chunk), ['before bob', 'after bob']);

      // The stream from before his invite: his invite, his join, the later message; not the earlier one.
      const stream = await events(bob, { from, timeout: 0, limit: 50 });
      const mine = stream.body.chunk.filter((e) => e.room_id === roomId);
      assert.deepEqual(bodies(mine), ['after bob']);
      assert.deepEqual(mine.filter((e) => e.type === 'm.room.member' && e.state_key === bob.user_id).map((e) => e.content.membership), ['invite', 'join']);
    });

    it('reads on past a long run of events hidden by history visibility instead of waiting', async () => {
      const roomId = await createRoom(alice, { preset: 'private_chat' });
      await setState(alice, roomId, 'm.room.history_visibility', { history_visibility: 'joined' });
      const from = await now(bob);
      for (let i = 0; i < 70; i++) await send(alice, roomId, `hidden ${i}`);
      await post(alice, `${room(roomId)}/invite`, { user_id: bob.user_id });
      await post(bob, `/v3/join/${enc(roomId)}`);
      const startedAt = Date.now();
      const res = await events(bob, { from, timeout: 10_000, limit: 1 });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.ok(Date.now() - startedAt < 3000, 'answered without waiting for the timeout');
      assert.deepEqual(res.body.chunk.map((e) => [e.type, e.state_key, e.content.membership]), [['m.room.member', bob.user_id, 'invite']]);
    });

    it('serves redacted events redacted, in the stream and by ID', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await post(bob, `/v3/join/${enc(roomId)}`);
      const from = await now(bob);
      const eventId = await send(alice, roomId, 'regrettable');
      const redact = await server.api.put(`${room(roomId)}/redact/${enc(eventId)}/r${++txn}`, { reason: 'oops' }, { token: alice.access_token });
      assert.equal(redact.status, 200);
      const stream = await events(bob, { from, timeout: 0 });
      const message = stream.body.chunk.find((e) => e.event_id === eventId);
      assert.ok(message);
      assert.deepEqual(message.content, {});
      const byId = await server.api.get<Event & { redacted_because?: unknown }>(`/v3/events/${enc(eventId)}`, { token: bob.access_token });
      assert.equal(byId.status, 200, JSON.stringify(byId.body));
      assert.deepEqual(byId.body.content, {});
      assert.ok(byId.body.redacted_because, 'the old format has redacted_because at the top level too');
    });

    it('serves an erased account\'s events whole to members joined then, redacted to later joiners', async () => {
      const dave = await server.api.register('dave');
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await post(bob, `/v3/join/${enc(roomId)}`);
      await post(dave, `/v3/join/${enc(roomId)}`);
      const from = await now(bob);
      const eventId = await send(dave, roomId, 'forget me');
      const auth = { type: 'm.login.password', identifier: { type: 'm.id.user', user: dave.user_id }, password: 'correct horse battery' };
      await post(dave, '/v3/account/deactivate', { auth, erase: true });
      const seenByBob = (await events(bob, { from, timeout: 0, limit: 50 })).body.chunk.find((e) => e.event_id === eventId);
      assert.equal(seenByBob?.content.body, 'forget me', 'joined when it was sent');
      await post(carol, `/v3/join/${enc(roomId)}`);
      const snapshot = await server.api.get<Room>(`${room(roomId)}/initialSync?limit=50`, { token: carol.access_token });
      const seenByCarol = snapshot.body.messages.chunk.find((e) => e.event_id === eventId);
      assert.ok(seenByCarol, 'shared history');
      assert.deepEqual(seenByCarol.content, {});
      const byId = await server.api.get<Event>(`/v3/events/${enc(eventId)}`, { token: carol.access_token });
      assert.deepEqual([byId.status, byId.body.content], [200, {}]);
      await post(carol, `${room(roomId)}/leave`);
    });

    it("wakes a stranger peeking into a world_readable room with its members' presence, not others'", async () => {
      const open = await createRoom(alice, { preset: 'public_chat' });
      await setState(alice, open, 'm.room.history_visibility', { history_visibility: 'world_readable' });
      const from = await now(carol, open);
      const notifier = server.hs.services.notifier;
      const before = notifier.waiting;
      const waiting = rawEvents(carol, { room_id: open, from, timeout: 20_000 });
      await until(() => notifier.waiting > before, 'the peek to wait');
      // Bob is in none of the room: his change is not the peeker's to see.
      const other = await server.api.put(`/v3/presence/${enc(bob.user_id)}/status`, { presence: 'online', status_msg: 'not in there' }, { token: bob.access_token });
      assert.equal(other.status, 200);
      const started = performance.now();
      const set = await server.api.put(`/v3/presence/${enc(alice.user_id)}/status`, { presence: 'online', status_msg: 'peek at me' }, { token: alice.access_token });
      assert.equal(set.status, 200);
      const res = await waiting;
      assert.ok(performance.now() - started < 10_000, 'woken by the change, not by the timeout');
      const presence = res.chunk.filter((e) => e.type === 'm.presence');
      assert.deepEqual(presence.map((e) => [e.content.user_id, e.content.status_msg]), [[alice.user_id, 'peek at me']]);
    });

    it('lets a stranger peek with room_id into a world_readable room only', async () => {
      const open = await createRoom(alice, { preset: 'public_chat' });
      await setState(alice, open, 'm.room.history_visibility', { history_visibility: 'world_readable' });
      const from = await now(carol, open);
      const notifier = server.hs.services.notifier;
      const before = notifier.waiting;
      const waiting = events(carol, { room_id: open, from, timeout: 20_000 });
      await until(() => notifier.waiting > before, 'the peek to wait');
      const eventId = await send(alice, open, 'hello peekers');
      const res = await waiting;
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body.chunk.map((e) => e.event_id), [eventId]);
      // A room initialSync as a peeker: the room, without a membership.
      const peek = await server.api.get<Room>(`${room(open)}/initialSync`, { token: carol.access_token });
      assert.equal(peek.status, 200, JSON.stringify(peek.body));
      assert.equal(peek.body.membership, undefined);
      assert.deepEqual(peek.body.presence, [], 'presence is for room-mates only');
      assert.ok(bodies(peek.body.messages.chunk).includes('hello peekers'));
      // Its messages.end goes on in /events (as clients of Synapse use it), with nothing repeated.
      const next = await send(alice, open, 'after the snapshot');
      const continued = await events(carol, { room_id: open, from: peek.body.messages.end, timeout: 0 });
      assert.equal(continued.status, 200, JSON.stringify(continued.body));
      assert.deepEqual(continued.body.chunk.map((e) => e.event_id), [next]);
      // Her own global stream does not carry the room she is not in.
      const own = await events(carol, { from, timeout: 0 });
      assert.ok(!own.body.chunk.some((e) => e.room_id === open));

      const shared = await createRoom(alice, { preset: 'public_chat' });
      await send(alice, shared, 'members only');
      for (const roomId of [shared, '!unknown:localhost']) {
        const refused = await events(carol, { room_id: roomId, timeout: 0 });
        assert.deepEqual([refused.status, refused.body.errcode], [403, 'M_FORBIDDEN'], roomId);
      }
    });

    it('refuses the room initialSync of a private room to a non-member', async () => {
      const roomId = await createRoom(alice, { preset: 'private_chat' });
      await send(alice, roomId, 'private');
      const res = await server.api.get(`${room(roomId)}/initialSync`, { token: carol.access_token });
      assert.deepEqual([res.status, res.body.errcode], [403, 'M_FORBIDDEN']);
      const mine = await server.api.get<Room>(`${room(roomId)}/initialSync?limit=0`, { token: alice.access_token });
      assert.equal(mine.status, 200);
      assert.deepEqual(mine.body.messages.chunk, []);
      assert.ok(mine.body.state.some((e) => e.type === 'm.room.member' && e.user_id === alice.user_id), 'state events in the old format');
    });

    it('answers the single event by ID only to who may read it', async () => {
      const roomId = await createRoom(alice, { preset: 'private_chat' });
      const eventId = await send(alice, roomId, 'just us');
      const mine = await server.api.get<Event>(`/v3/events/${enc(eventId)}`, { token: alice.access_token });
      assert.equal(mine.status, 200, JSON.stringify(mine.body));
      assert.deepEqual([mine.body.event_id, mine.body.room_id, mine.body.content.body], [eventId, roomId, 'just us']);
      const theirs = await server.api.get(`/v3/events/${enc(eventId)}`, { token: carol.access_token });
      assert.deepEqual([theirs.status, theirs.body.errcode], [404, 'M_NOT_FOUND']);
      const unknown = await server.api.get(`/r0/events/${enc('$nothing:localhost')}`, { token: alice.access_token });
      assert.deepEqual([unknown.status, unknown.body.errcode], [404, 'M_NOT_FOUND']);
    });

    it('lists invites and, with archived, the rooms left in initialSync', async () => {
      const invited = await createRoom(alice, { preset: 'private_chat' });
      await post(alice, `${room(invited)}/invite`, { user_id: carol.user_id });
      const left = await createRoom(alice, { preset: 'public_chat' });
      await post(carol, `/v3/join/${enc(left)}`);
      await send(alice, left, 'while carol was there');
      await post(carol, `${room(left)}/leave`);
      await send(alice, left, 'after carol left');
      const current = await server.api.get<InitialSync>('/r0/initialSync', { token: carol.access_token });
      assert.equal(current.status, 200, JSON.stringify(current.body));
      const invite = current.body.rooms.find((r) => r.room_id === invited);
      assert.equal(invite?.membership, 'invite');
      assert.equal(invite?.invite?.state_key, carol.user_id);
      assert.ok(!current.body.rooms.some((r) => r.room_id === left));
      const archived = await server.api.get<InitialSync>('/v3/initialSync?archived=true', { token: carol.access_token });
      const gone = archived.body.rooms.find((r) => r.room_id === left);
      assert.equal(gone?.membership, 'leave');
      assert.deepEqual(bodies(gone.messages.chunk), ['while carol was there']);
    });

    it('carries receipts, typing, account data and presence in the stream too, as Synapse does', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await post(bob, `/v3/join/${enc(roomId)}`);
      const from = await now(bob);
      const eventId = await send(alice, roomId, 'read me');
      await post(bob, `${room(roomId)}/receipt/m.read/${enc(eventId)}`);
      const typing = await server.api.put(`${room(roomId)}/typing/${enc(alice.user_id)}`, { typing: true, timeout: 60_000 }, { token: alice.access_token });
      assert.equal(typing.status, 200);
      const global = await server.api.put(`/v3/user/${enc(bob.user_id)}/account_data/org.example.cats`, { cats: 2 }, { token: bob.access_token });
      assert.equal(global.status, 200);
      const tag = await server.api.put(`/v3/user/${enc(bob.user_id)}/rooms/${enc(roomId)}/tags/u.work`, { order: 0.5 }, { token: bob.access_token });
      assert.equal(tag.status, 200);
      const presence = await server.api.put(`/v3/presence/${enc(alice.user_id)}/status`, { presence: 'online', status_msg: 'here' }, { token: alice.access_token });
      assert.equal(presence.status, 200);

      const { chunk } = await rawEvents(bob, { from, timeout: 0, limit: 50 });
      const ofType = (type: string) => chunk.filter((e) => e.type === type);
      assert.deepEqual(ofType('m.room.message').map((e) => e.event_id), [eventId]);
      const receipt = ofType('m.receipt').find((e) => e.room_id === roomId);
      assert.ok((receipt?.content[eventId] as { 'm.read'?: Record<string, unknown> } | undefined)?.['m.read']?.[bob.user_id], JSON.stringify(chunk));
      assert.deepEqual(ofType('m.typing').map((e) => [e.room_id, e.content.user_ids]), [[roomId, [alice.user_id]]]);
      assert.deepEqual(ofType('org.example.cats'), [{ type: 'org.example.cats', content: { cats: 2 } }]);
      assert.deepEqual(ofType('m.tag').map((e) => [e.room_id, e.content]), [[roomId, { tags: { 'u.work': { order: 0.5 } } }]]);
      const status = ofType('m.presence').find((e) => e.content.user_id === alice.user_id);
      assert.equal(status?.content.status_msg, 'here');

      // initialSync has the joined rooms' receipts, each with its room.
      const initial = await fetch(`${server.api.baseUrl}/_matrix/client/v3/initialSync?limit=1`, { headers: { authorization: `Bearer ${bob.access_token}` } });
      const body = (await initial.json()) as { receipts: { type: string; room_id: string; content: Record<string, unknown> }[]; account_data: { type: string }[]; presence: { content: { user_id: string } }[] };
      assert.ok(body.receipts.some((r) => r.type === 'm.receipt' && r.room_id === roomId && eventId in r.content));
      assert.ok(body.account_data.some((e) => e.type === 'org.example.cats'));
      assert.ok(body.presence.some((p) => p.content.user_id === alice.user_id));
    });

    it('makes a guest name the room it reads', async () => {
      const guest = await server.api.post<{ access_token: string }>('/v3/register?kind=guest', {});
      assert.equal(guest.status, 200, JSON.stringify(guest.body));
      const res = await server.api.get('/v3/events?timeout=0', { token: guest.body.access_token });
      assert.deepEqual([res.status, res.body.errcode], [400, 'M_MISSING_PARAM']);
      const open = await createRoom(alice, { preset: 'public_chat' });
      await setState(alice, open, 'm.room.history_visibility', { history_visibility: 'world_readable' });
      const peek = await server.api.get(`/v3/events?timeout=0&room_id=${enc(open)}`, { token: guest.body.access_token });
      assert.equal(peek.status, 200, JSON.stringify(peek.body));
    });

    it('refuses bad input with the spec\'s errors, never a 500', async () => {
      const expect = async (path: string, status: number, errcode: string) => {
        const res = await server.api.get(path, { token: alice.access_token });
        assert.deepEqual([res.status, res.body.errcode], [status, errcode], `${path}: ${JSON.stringify(res.body)}`);
      };
      for (const from of ['bogus', 'm1_x', 'm1_1_2', 't3', 't-1-2', 's', '-1']) await expect(`/v3/events?timeout=0&from=${enc(from)}`, 400, 'M_INVALID_PARAM');
      await expect('/v3/events?timeout=soon', 400, 'M_INVALID_PARAM');
      await expect('/v3/events?timeout=0&limit=-3', 400, 'M_INVALID_PARAM');
      await expect('/v3/events?timeout=0&room_id=nope', 400, 'M_INVALID_PARAM');
      await expect('/v3/initialSync?limit=x', 400, 'M_INVALID_PARAM');
      await expect('/v3/initialSync?archived=maybe', 400, 'M_INVALID_PARAM');
      await expect('/v3/rooms/nope/initialSync', 400, 'M_INVALID_PARAM');
      const anonymous = await server.api.get('/v3/events?timeout=0');
      assert.equal(anonymous.status, 401);
    });
  });
}
