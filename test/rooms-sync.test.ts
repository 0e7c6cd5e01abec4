import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { CompiledQuery } from 'kysely';
import pg from 'pg';
import { parseRoomToken } from '../src/services/rooms/room-token.js';
import { HTTP_ENGINES, startTestServer, twoProcessesOnePostgres, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

type Registered = { user_id: string; access_token: string; device_id: string };
type Event = { event_id: string; type: string; sender: string; state_key?: string; content: Record<string, unknown>; room_id?: string; unsigned?: Record<string, unknown> };
type JoinedRoom = {
  timeline: { events: Event[]; limited: boolean; prev_batch: string };
  state: { events: Event[] };
  account_data: { events: { type: string; content: Record<string, unknown> }[] };
  ephemeral: { events: unknown[] };
  summary?: { 'm.heroes'?: string[]; 'm.joined_member_count'?: number; 'm.invited_member_count'?: number };
  unread_notifications: { highlight_count: number; notification_count: number };
};
type Sync = {
  next_batch: string;
  account_data: { events: unknown[] };
  rooms: {
    join: Record<string, JoinedRoom>;
    invite: Record<string, { invite_state: { events: Event[] } }>;
    leave: Record<string, { timeline: { events: Event[]; limited: boolean }; state: { events: Event[] } }>;
  };
  device_lists: { changed: string[]; left: string[] };
};

const enc = encodeURIComponent;
const keysOf = (events: Event[]) => events.map((e) => `${e.type}|${e.state_key ?? ''}`);

/**
 * Counts the SQL statements this process runs (the server runs in the test's process) until
 * `restore`: in better-sqlite3, and in node-postgres, where each is a round trip. Left out there:
 * the notices to other processes (NOTIFY), sent after a write whenever the pool gets to them, and
 * the mail outbox's poller, which runs on its own timer.
 */
function countStatements(): { readonly count: number; restore(): void } {
  const probe = new SQLite(':memory:');
  const proto = Object.getPrototypeOf(probe.prepare('SELECT 1')) as Record<string, (...args: unknown[]) => unknown>;
  probe.close();
  const pgProto = pg.Client.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const originals: [Record<string, (...args: unknown[]) => unknown>, string, (...args: unknown[]) => unknown][] = [];
  const counter = {
    count: 0,
    restore: () => {
      for (const [target, method, original] of originals) target[method] = original;
    },
  };
  const wrap = (target: Record<string, (...args: unknown[]) => unknown>, method: string) => {
    const original = target[method]!;
    originals.push([target, method, original]);
    target[method] = function (this: unknown, ...args: unknown[]) {
      // node-postgres gets the text (or a config with it); a better-sqlite3 statement holds it.
      const given = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: unknown } | undefined)?.text;
      const text = typeof given === 'string' ? given : ((this as { source?: string }).source ?? '');
      if (!/pg_notify|"outbox"/.test(text)) {
        counter.count++;
        if (process.env.TRACE_SQL) console.error('SQL', counter.count, text.replace(/\s+/g, ' ').slice(0, 90));
      }
      return original.apply(this, args);
    };
  };
  for (const method of ['all', 'run', 'get', 'iterate']) wrap(proto, method);
  wrap(pgProto, 'query');
  return counter;
}

for (const engine of HTTP_ENGINES) {
  describe(`sync: rooms (${engine})`, () => {
    let server: TestServer;
    let alice: Registered;
    let bob: Registered;
    let carol: Registered;
    before(async () => {
      server = await startTestServer(engine);
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
      carol = await server.api.register('carol');
    });
    after(() => server.close());

    const sync = async (who: Registered, query: Record<string, string | number | object> = {}) => {
      const params = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)]));
      const res = await server.api.get<Sync>(`/v3/sync?${params}`, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    };
    const createRoom = async (who: Registered, body: Record<string, unknown> = {}) => {
      const res = await server.api.post<{ room_id: string }>('/v3/createRoom', body, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.room_id;
    };
    let txn = 0;
    const send = async (who: Registered, roomId: string, body: string) => {
      const res = await server.api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/send/m.room.message/t${++txn}`, { msgtype: 'm.text', body }, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.event_id;
    };
    const join = async (who: Registered, roomId: string) => {
      const res = await server.api.post(`/v3/rooms/${enc(roomId)}/join`, {}, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const invite = async (who: Registered, roomId: string, target: Registered) => {
      const res = await server.api.post(`/v3/rooms/${enc(roomId)}/invite`, { user_id: target.user_id }, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const leave = async (who: Registered, roomId: string) => {
      const res = await server.api.post(`/v3/rooms/${enc(roomId)}/leave`, {}, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const register = (name: string) => server.api.register(name);

    it('gives a created room in an initial sync: its timeline, and with a short timeline the state before it', async () => {
      const roomId = await createRoom(alice, { name: 'Plans', topic: 'What next' });
      const first = await sync(alice);
      const room = first.rooms.join[roomId]!;
      assert.ok(room, 'the room is in rooms.join');
      assert.deepEqual(keysOf(room.timeline.events), [
        'm.room.create|',
        `m.room.member|${alice.user_id}`,
        'm.room.power_levels|',
        'm.room.join_rules|',
        'm.room.history_visibility|',
        'm.room.guest_access|',
        'm.room.name|',
        'm.room.topic|',
      ]);
      assert.equal(room.timeline.limited, false);
      assert.deepEqual(room.state.events, [], 'the timeline starts at the creation: no state before it');
      assert.equal(room.timeline.events[0]!.room_id, undefined, 'sync events leave out room_id');
      assert.deepEqual(room.ephemeral, { events: [] });
      assert.deepEqual(room.unread_notifications, { highlight_count: 0, notification_count: 0 });
      assert.deepEqual(room.summary, { 'm.joined_member_count': 1, 'm.invited_member_count': 0 }, 'a named room has no heroes');

      const short = await sync(alice, { filter: { room: { timeline: { limit: 2 } } } });
      const limited = short.rooms.join[roomId]!;
      assert.deepEqual(keysOf(limited.timeline.events), ['m.room.name|', 'm.room.topic|']);
      assert.equal(limited.timeline.limited, true);
      assert.deepEqual(keysOf(limited.state.events).sort(), [
        'm.room.create|',
        'm.room.guest_access|',
        'm.room.history_visibility|',
        'm.room.join_rules|',
        `m.room.member|${alice.user_id}`,
        'm.room.power_levels|',
      ]);
      // prev_batch is the point just before the timeline's first event: paging back from it gives the event before.
      const firstEvent = (await server.hs.services.store.events.get(limited.timeline.events[0]!.event_id))!;
      assert.equal(limited.timeline.prev_batch, `t${firstEvent.depth}-${Number(firstEvent.stream_pos) - 1}`);
      const point = await parseRoomToken(limited.timeline.prev_batch, roomId, server.hs.services.store.events);
      const before = await server.hs.services.store.events.page(roomId, point!, 'b', 1);
      assert.equal(before[0]!.type, 'm.room.guest_access');
    });

    it('gives only what is new in an incremental sync, limited when more happened than the timeline holds', async () => {
      const roomId = await createRoom(alice);
      const otherRoom = await createRoom(alice);
      const first = await sync(alice);
      assert.ok(first.rooms.join[otherRoom]);
      const eventId = await send(alice, roomId, 'hello');
      const next = await sync(alice, { since: first.next_batch });
      assert.deepEqual(Object.keys(next.rooms.join), [roomId], 'only the room that changed');
      const room = next.rooms.join[roomId]!;
      assert.deepEqual(room.timeline.events.map((e) => e.event_id), [eventId]);
      assert.equal(room.timeline.events[0]!.unsigned?.transaction_id, `t${txn}`, 'the sending device sees its transaction ID');
      assert.equal(room.timeline.limited, false);
      assert.deepEqual(room.state.events, []);
      assert.equal(room.summary, undefined, 'no member changed: no summary');

      // Nothing new: nothing to say about rooms.
      const idle = await sync(alice, { since: next.next_batch });
      assert.deepEqual(idle.rooms.join, {});

      // A state change and then more messages than the timeline limit: the state change comes as state.
      await server.api.put(`/v3/rooms/${enc(roomId)}/state/m.room.topic`, { topic: 'gap' }, { token: alice.access_token });
      for (let i = 0; i < 4; i++) await send(alice, roomId, `m${i}`);
      const gap = await sync(alice, { since: idle.next_batch, filter: { room: { timeline: { limit: 3 } } } });
      const gapRoom = gap.rooms.join[roomId]!;
      assert.equal(gapRoom.timeline.limited, true);
      assert.deepEqual(gapRoom.timeline.events.map((e) => e.content.body), ['m1', 'm2', 'm3']);
      assert.deepEqual(keysOf(gapRoom.state.events), ['m.room.topic|']);
      assert.equal(gapRoom.state.events[0]!.content.topic, 'gap');
      assert.match(gapRoom.timeline.prev_batch, /^t\d+-\d+$/);
    });

    it('sends state events a timeline filter leaves out as state, and honours rooms/not_rooms', async () => {
      const roomId = await createRoom(alice);
      const hidden = await createRoom(alice);
      const first = await sync(alice);
      await server.api.put(`/v3/rooms/${enc(roomId)}/state/m.room.name`, { name: 'Renamed' }, { token: alice.access_token });
      await send(alice, roomId, 'after rename');
      await send(alice, hidden, 'not wanted');
      const next = await sync(alice, { since: first.next_batch, filter: { room: { not_rooms: [hidden], timeline: { types: ['m.room.message'] } } } });
      assert.equal(next.rooms.join[hidden], undefined);
      const room = next.rooms.join[roomId]!;
      assert.deepEqual(room.timeline.events.map((e) => e.type), ['m.room.message']);
      assert.deepEqual(keysOf(room.state.events), ['m.room.name|']);
      const only = await sync(alice, { filter: { room: { rooms: [hidden] } } });
      assert.deepEqual(Object.keys(only.rooms.join), [hidden]);
    });

    it("gives events as servers exchange them with the filter's event_format 'federation', redacted ones redacted", async () => {
      const roomId = await createRoom(alice);
      const secret = await send(alice, roomId, 'to be redacted');
      const redaction = await server.api.put(`/v3/rooms/${enc(roomId)}/redact/${enc(secret)}/r${++txn}`, {}, { token: alice.access_token });
      assert.equal(redaction.status, 200, JSON.stringify(redaction.body));
      const kept = await send(alice, roomId, 'kept');
      type Pdu = Event & { room_id: string; depth: number; prev_events: string[]; auth_events: string[]; hashes: { sha256: string }; signatures: Record<string, Record<string, string>> };
      const body = await sync(alice, { filter: { event_format: 'federation', room: { timeline: { limit: 3 } } } });
      const room = body.rooms.join[roomId]!;
      const timeline = room.timeline.events as Pdu[];
      assert.deepEqual(timeline.map((e) => e.event_id), [secret, redaction.body.event_id, kept]);
      const server_name = alice.user_id.split(':').slice(1).join(':');
      for (const e of [...timeline, ...(room.state.events as Pdu[])]) {
        assert.equal(e.room_id, roomId, JSON.stringify(e));
        assert.ok(Array.isArray(e.prev_events) && Array.isArray(e.auth_events), JSON.stringify(e));
        if (e.type !== 'm.room.create') assert.ok(e.prev_events.length > 0 && e.auth_events.length > 0, JSON.stringify(e));
        assert.equal(typeof e.depth, 'number');
        assert.match(e.hashes.sha256, /^[A-Za-z0-9+/]+$/);
        assert.ok(e.signatures[server_name], JSON.stringify(e.signatures));
      }
      assert.ok(room.state.events.some((e) => e.type === 'm.room.create'), 'the state before a limited timeline, in the same format');
      assert.deepEqual(timeline[0]!.content, {}, 'a redacted event is served redacted');
      assert.equal(timeline[2]!.content.body, 'kept');
      assert.equal(timeline[2]!.unsigned?.transaction_id, `t${txn}`, 'unsigned as in the client format');
      // The default is the client format.
      const plain = (await sync(alice, { filter: { room: { timeline: { limit: 1 } } } })).rooms.join[roomId]!.timeline.events[0] as Partial<Pdu>;
      assert.equal(plain.event_id, kept);
      assert.equal(plain.hashes, undefined);
      assert.equal(plain.room_id, undefined);
    });

    it('shows an invite with its stripped state, then the room in full once joined', async () => {
      const dave = await register('dave');
      const roomId = await createRoom(alice, { name: 'Invited', preset: 'private_chat' });
      await send(alice, roomId, 'before dave');
      const start = await sync(dave);
      await invite(alice, roomId, dave);
      const invited = await sync(dave, { since: start.next_batch });
      const inviteState = invited.rooms.invite[roomId]!.invite_state.events;
      assert.deepEqual(keysOf(inviteState).sort(), ['m.room.create|', 'm.room.join_rules|', `m.room.member|${alice.user_id}`, `m.room.member|${dave.user_id}`, 'm.room.name|']);
      const own = inviteState.find((e) => e.state_key === dave.user_id)!;
      assert.equal(own.content.membership, 'invite');
      assert.equal(own.sender, alice.user_id);
      assert.deepEqual(invited.rooms.join, {});
      // Shown once.
      assert.deepEqual((await sync(dave, { since: invited.next_batch })).rooms.invite, {});
      // An initial sync shows it too.
      assert.ok((await sync(dave)).rooms.invite[roomId]);

      await join(dave, roomId);
      const joined = await sync(dave, { since: invited.next_batch, filter: { room: { timeline: { limit: 2 } } } });
      assert.deepEqual(joined.rooms.invite, {});
      const room = joined.rooms.join[roomId]!;
      assert.deepEqual(room.timeline.events.map((e) => `${e.state_key} ${e.content.membership}`), [`${dave.user_id} invite`, `${dave.user_id} join`]);
      assert.equal(room.timeline.limited, true);
      const state = keysOf(room.state.events);
      for (const key of ['m.room.create|', 'm.room.name|', 'm.room.power_levels|', `m.room.member|${alice.user_id}`]) assert.ok(state.includes(key), `${key} in the state of a newly joined room`);
      assert.deepEqual(room.summary, { 'm.joined_member_count': 2, 'm.invited_member_count': 0 }, 'named: no heroes');
    });

    it("keeps history from before a join hidden where history_visibility is 'joined'", async () => {
      const mallory = await register('mallory');
      const roomId = await createRoom(alice, { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }] });
      await server.api.put(`/v3/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: 'zeroth' }, { token: alice.access_token });
      await send(alice, roomId, 'before mallory');
      const start = await sync(mallory);
      await join(mallory, roomId);
      await send(alice, roomId, 'after mallory');
      const next = await sync(mallory, { since: start.next_batch });
      const events = next.rooms.join[roomId]!.timeline.events;
      // Events from while the room was still 'shared' (the creation, up to the visibility change itself)
      // are visible; of the later ones, the state events still current (the topic) but not the message.
      assert.deepEqual(keysOf(events), [
        'm.room.create|',
        `m.room.member|${alice.user_id}`,
        'm.room.power_levels|',
        'm.room.join_rules|',
        'm.room.history_visibility|',
        'm.room.topic|',
        `m.room.member|${mallory.user_id}`,
        'm.room.message|',
      ]);
      assert.equal(events.at(-1)!.content.body, 'after mallory');
      const initial = await sync(mallory);
      assert.ok(!initial.rooms.join[roomId]!.timeline.events.some((e) => e.content.body === 'before mallory'));
      assert.ok(initial.rooms.join[roomId]!.timeline.events.some((e) => e.type === 'm.room.topic'), 'current state shows in the timeline');
      // A hidden state event no longer current still reaches the client as state: its replacement.
      await server.api.put(`/v3/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: 'first' }, { token: alice.access_token });
      await leave(mallory, roomId);
      await server.api.put(`/v3/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: 'second' }, { token: alice.access_token });
      await server.api.put(`/v3/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: 'third' }, { token: alice.access_token });
      // More hidden messages after it than four timelines' worth: the sync reads back past them.
      for (let i = 0; i < 45; i++) await send(alice, roomId, `while mallory is away ${i}`);
      const beforeRejoin = await sync(mallory);
      await join(mallory, roomId);
      const rejoined = (await sync(mallory, { since: beforeRejoin.next_batch })).rooms.join[roomId]!;
      const topics = rejoined.timeline.events.filter((e) => e.type === 'm.room.topic').map((e) => e.content.topic);
      // A room joined since the token comes with its latest events: 'first' was set while mallory was
      // joined; of those set while away, only the current one.
      assert.deepEqual(topics, ['first', 'third']);
      // A 'shared' room shows it.
      const shared = await createRoom(alice, { preset: 'public_chat' });
      await send(alice, shared, 'shared before');
      await join(mallory, shared);
      const sharedSync = await sync(mallory, { since: next.next_batch });
      assert.ok(sharedSync.rooms.join[shared]!.timeline.events.some((e) => e.content.body === 'shared before'));
    });

    it('gives room account data, and all rooms with their state on full_state', async () => {
      const roomId = await createRoom(alice);
      const quiet = await createRoom(alice);
      const first = await sync(alice);
      const put = await server.api.put(`/v3/user/${enc(alice.user_id)}/rooms/${enc(roomId)}/account_data/m.tag`, { tags: { 'u.work': {} } }, { token: alice.access_token });
      assert.equal(put.status, 200);
      const next = await sync(alice, { since: first.next_batch });
      assert.deepEqual(Object.keys(next.rooms.join), [roomId]);
      assert.deepEqual(next.rooms.join[roomId]!.account_data.events, [{ type: 'm.tag', content: { tags: { 'u.work': {} } } }]);
      assert.deepEqual(next.rooms.join[roomId]!.timeline.events, []);
      assert.deepEqual(next.account_data, { events: [] }, 'room account data is not global account data');
      assert.deepEqual((await sync(alice)).rooms.join[roomId]!.account_data.events.map((e) => e.type), ['m.tag']);

      const full = await sync(alice, { since: next.next_batch, full_state: 'true' });
      for (const id of [roomId, quiet]) {
        const room = full.rooms.join[id]!;
        assert.deepEqual(room.timeline.events, [], 'the timeline still starts at since');
        assert.ok(keysOf(room.state.events).includes('m.room.create|'), 'all state');
      }
    });

    it('shows a room left or kicked from once, its timeline ending with the leave', async () => {
      const erin = await register('erin');
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await join(erin, roomId);
      const start = await sync(erin);
      await send(alice, roomId, 'before leaving');
      await leave(erin, roomId);
      await send(alice, roomId, 'after leaving');
      const left = await sync(erin, { since: start.next_batch });
      assert.deepEqual(Object.keys(left.rooms.leave), [roomId]);
      assert.deepEqual(left.rooms.join, {});
      const events = left.rooms.leave[roomId]!.timeline.events;
      assert.deepEqual(events.map((e) => e.content.body ?? e.content.membership), ['before leaving', 'leave']);
      assert.deepEqual((await sync(erin, { since: left.next_batch })).rooms.leave, {}, 'once');

      // Not in an initial sync, unless include_leave; never once forgotten.
      assert.deepEqual((await sync(erin)).rooms.leave, {});
      const archived = await sync(erin, { filter: { room: { include_leave: true } } });
      assert.deepEqual(archived.rooms.leave[roomId]!.timeline.events.at(-1)!.content.membership, 'leave');
      assert.ok(!archived.rooms.leave[roomId]!.timeline.events.some((e) => e.content.body === 'after leaving'));
      await server.api.post(`/v3/rooms/${enc(roomId)}/forget`, {}, { token: erin.access_token });
      assert.deepEqual((await sync(erin, { filter: { room: { include_leave: true } } })).rooms.leave, {});

      // A rejected invite: the user's own member events, and no state of a room never joined.
      const other = await createRoom(alice, { name: 'Not for erin' });
      await send(alice, other, 'private talk');
      const beforeInvite = await sync(erin);
      await invite(alice, other, erin);
      await leave(erin, other);
      const rejected = (await sync(erin, { since: beforeInvite.next_batch })).rooms.leave[other]!;
      assert.deepEqual(rejected.timeline.events.map((e) => e.content.membership), ['invite', 'leave']);
      assert.deepEqual(rejected.state.events, []);

      // A kick is a leave too.
      await join(erin, roomId);
      const before = await sync(erin);
      await server.api.post(`/v3/rooms/${enc(roomId)}/kick`, { user_id: erin.user_id, reason: 'testing' }, { token: alice.access_token });
      const kicked = await sync(erin, { since: before.next_batch });
      const kick = kicked.rooms.leave[roomId]!.timeline.events.at(-1)!;
      assert.equal(kick.content.membership, 'leave');
      assert.equal(kick.sender, alice.user_id);
    });

    it('wakes a waiting room-mate at once when a message is sent, and not a stranger', async () => {
      const frank = await register('frank');
      const grace = await register('grace');
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await join(frank, roomId);
      const start = await sync(frank);
      const strangerStart = await sync(grace);
      const notifier = server.hs.services.notifier;
      const waiting = server.api.get<Sync>(`/v3/sync?since=${start.next_batch}&timeout=20000`, { token: frank.access_token });
      const stranger = server.api.get<Sync>(`/v3/sync?since=${strangerStart.next_batch}&timeout=1500`, { token: grace.access_token });
      await until(() => notifier.waiting === 2, 'both syncs to wait');
      const sentAt = Date.now();
      const eventId = await send(alice, roomId, 'wake up');
      const res = await waiting;
      assert.ok(Date.now() - sentAt < 1000, `answered ${Date.now() - sentAt} ms after the send`);
      assert.deepEqual(res.body.rooms.join[roomId]!.timeline.events.map((e) => e.event_id), [eventId]);
      const strangerRes = await stranger;
      assert.deepEqual(strangerRes.body.rooms.join, {});
      assert.ok(Date.now() - sentAt >= 1000, 'the stranger waited out its timeout');

      // An invite wakes the invitee.
      const inviteWait = server.api.get<Sync>(`/v3/sync?since=${strangerRes.body.next_batch}&timeout=20000`, { token: grace.access_token });
      await until(() => notifier.waiting === 1, 'the invitee to wait');
      const invitedAt = Date.now();
      await invite(alice, roomId, grace);
      const invited = await inviteWait;
      assert.ok(Date.now() - invitedAt < 1000);
      assert.ok(invited.body.rooms.invite[roomId]);
    });

    it('gives the summary: heroes in stream order and member counts, again when members change', async () => {
      const henry = await register('henry');
      const roomId = await createRoom(alice, { invite: [bob.user_id] });
      await invite(alice, roomId, henry);
      await join(bob, roomId);
      await invite(alice, roomId, carol);
      const first = await sync(alice);
      // Bob's join moved him after Henry's invite in stream order.
      assert.deepEqual(first.rooms.join[roomId]!.summary, { 'm.heroes': [henry.user_id, bob.user_id, carol.user_id], 'm.joined_member_count': 2, 'm.invited_member_count': 2 });
      await join(henry, roomId);
      const next = await sync(alice, { since: first.next_batch });
      assert.deepEqual(next.rooms.join[roomId]!.summary, { 'm.heroes': [bob.user_id, carol.user_id, henry.user_id], 'm.joined_member_count': 3, 'm.invited_member_count': 1 });
    });

    it('lazy-loads members: only the senders (and heroes, and the user), each once unless asked again', async () => {
      const lazy = { room: { state: { lazy_load_members: true }, timeline: { limit: 1 } } };
      const users: Registered[] = [];
      for (const name of ['l1', 'l2', 'l3', 'l4', 'l5', 'l6', 'l7']) users.push(await register(name));
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      for (const u of users) await join(u, roomId);
      const [h1, h2, h3, h4, h5, quiet, talker] = users as [Registered, Registered, Registered, Registered, Registered, Registered, Registered];
      await send(talker, roomId, 'I talk');
      const first = await sync(alice, { filter: lazy });
      const room = first.rooms.join[roomId]!;
      assert.deepEqual(room.summary!['m.heroes'], [h1.user_id, h2.user_id, h3.user_id, h4.user_id, h5.user_id]);
      const members = room.state.events.filter((e) => e.type === 'm.room.member').map((e) => e.state_key).sort();
      assert.deepEqual(members, [alice.user_id, h1.user_id, h2.user_id, h3.user_id, h4.user_id, h5.user_id, talker.user_id].sort());
      assert.ok(!members.includes(quiet.user_id), 'a member who sent nothing is not loaded');
      assert.ok(room.state.events.some((e) => e.type === 'm.room.power_levels'), 'other state is all there');

      // Without lazy loading, every member.
      const all = (await sync(alice, { filter: { room: { timeline: { limit: 1 } } } })).rooms.join[roomId]!;
      assert.equal(all.state.events.filter((e) => e.type === 'm.room.member').length, 8);

      const lazyAgain = await sync(alice, { filter: lazy });
      await send(quiet, roomId, 'now I talk');
      await send(talker, roomId, 'me again');
      const next = await sync(alice, { since: lazyAgain.next_batch, filter: { room: { state: { lazy_load_members: true }, timeline: { limit: 2 } } } });
      const nextMembers = next.rooms.join[roomId]!.state.events.filter((e) => e.type === 'm.room.member').map((e) => e.state_key);
      assert.deepEqual(nextMembers, [quiet.user_id], 'the new sender only: the other was sent before');
      await send(talker, roomId, 'and again');
      const redundant = await sync(alice, { since: next.next_batch, filter: { room: { state: { lazy_load_members: true, include_redundant_members: true } } } });
      assert.deepEqual(redundant.rooms.join[roomId]!.state.events.map((e) => e.state_key), [talker.user_id], 'include_redundant_members sends it again');
    });

    it('leaves out of an incremental sync a room whose every change the filters left out', async () => {
      const roomId = await createRoom(alice);
      const filter = { room: { timeline: { types: [] }, state: { types: ['a.test.state'] } } };
      const first = await sync(alice, { filter });
      assert.ok(first.rooms.join[roomId]);
      const put = await server.api.put(`/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(alice.user_id)}`, { membership: 'join', displayname: 'Boris' }, { token: alice.access_token });
      assert.equal(put.status, 200);
      await send(alice, roomId, 'filtered out');
      const next = await sync(alice, { since: first.next_batch, filter });
      assert.deepEqual(next.rooms.join, {}, 'a summary alone does not bring the room in');
      // Without the filter, the same changes are there, with the summary.
      const unfiltered = await sync(alice, { since: first.next_batch });
      assert.equal(unfiltered.rooms.join[roomId]?.summary?.['m.joined_member_count'], 1);
    });

    it('gives no heroes for a room with a name or canonical alias, so lazy-loading sends only the senders there', async () => {
      const lazy = { room: { state: { lazy_load_members: true }, timeline: { limit: 1 } } };
      const quiet = await register('quietone');
      const talker = await register('talker');
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await join(quiet, roomId);
      await join(talker, roomId);
      await send(talker, roomId, 'hello');
      const membersOf = (body: Sync) => body.rooms.join[roomId]!.state.events.filter((e) => e.type === 'm.room.member').map((e) => e.state_key).sort();
      const unnamed = await sync(alice, { filter: lazy });
      assert.deepEqual(unnamed.rooms.join[roomId]!.summary!['m.heroes'], [quiet.user_id, talker.user_id]);
      assert.deepEqual(membersOf(unnamed), [alice.user_id, quiet.user_id, talker.user_id].sort(), 'heroes are loaded');

      const alias = `#named-${Date.now()}:${server.config.server_name}`;
      assert.equal((await server.api.put(`/v3/directory/room/${enc(alias)}`, { room_id: roomId }, { token: alice.access_token })).status, 200);
      for (const [type, content] of [['m.room.canonical_alias', { alias }], ['m.room.name', { name: 'Named' }], ['m.room.name', { name: '' }]] as const) {
        const put = await server.api.put(`/v3/rooms/${enc(roomId)}/state/${type}`, content, { token: alice.access_token });
        assert.equal(put.status, 200);
        await send(talker, roomId, type);
        const named = await sync(alice, { filter: lazy });
        assert.deepEqual(named.rooms.join[roomId]!.summary, { 'm.joined_member_count': 3, 'm.invited_member_count': 0 }, type);
        assert.deepEqual(membersOf(named), [alice.user_id, talker.user_id].sort(), `${type}: only the sender and the user`);
      }
      // With neither left (an empty name, no alias), heroes are back.
      await server.api.put(`/v3/rooms/${enc(roomId)}/state/m.room.canonical_alias`, {}, { token: alice.access_token });
      const again = await sync(alice, { filter: lazy });
      assert.deepEqual(again.rooms.join[roomId]!.summary!['m.heroes'], [quiet.user_id, talker.user_id]);
    });

    it('puts new room-mates in device_lists.changed, their key changes too, and in left once no room is shared', async () => {
      const ivan = await register('ivan');
      const judy = await register('judy');
      const roomId = await createRoom(ivan, { preset: 'public_chat', initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }] });
      const ivanStart = await sync(ivan);
      const judyStart = await sync(judy);
      await join(judy, roomId);
      const ivanNext = await sync(ivan, { since: ivanStart.next_batch });
      const judyNext = await sync(judy, { since: judyStart.next_batch });
      assert.ok(ivanNext.device_lists.changed.includes(judy.user_id), 'the joiner is new to the room-mate');
      assert.ok(judyNext.device_lists.changed.includes(ivan.user_id), 'the members are new to the joiner');
      const keyChanges = await server.api.get<{ changed: string[]; left: string[] }>(`/v3/keys/changes?from=${ivanStart.next_batch}&to=${ivanNext.next_batch}`, { token: ivan.access_token });
      assert.ok(keyChanges.body.changed.includes(judy.user_id), '/keys/changes agrees');

      // Judy's new device keys reach Ivan, and wake his waiting sync.
      const waiting = server.api.get<Sync>(`/v3/sync?since=${ivanNext.next_batch}&timeout=20000`, { token: ivan.access_token });
      await until(() => server.hs.services.notifier.waiting === 1, 'the sync to wait');
      const deviceKeys = { user_id: judy.user_id, device_id: judy.device_id, algorithms: ['m.olm.v1.curve25519-aes-sha2'], keys: { [`curve25519:${judy.device_id}`]: 'abc' }, signatures: {} };
      assert.equal((await server.api.post('/v3/keys/upload', { device_keys: deviceKeys }, { token: judy.access_token })).status, 200);
      const woken = await waiting;
      assert.deepEqual(woken.body.device_lists.changed, [judy.user_id]);
      const query = await server.api.post<{ device_keys: Record<string, Record<string, unknown>> }>('/v3/keys/query', { device_keys: { [judy.user_id]: [] } }, { token: ivan.access_token });
      assert.ok(query.body.device_keys[judy.user_id]![judy.device_id], 'a room-mate may query the keys');

      await leave(judy, roomId);
      const ivanLeft = await sync(ivan, { since: woken.body.next_batch });
      const judyLeft = await sync(judy, { since: judyNext.next_batch });
      assert.deepEqual(ivanLeft.device_lists.left, [judy.user_id]);
      assert.deepEqual(judyLeft.device_lists.left, [ivan.user_id]);
      assert.ok(!ivanLeft.device_lists.changed.includes(judy.user_id));
      const leftChanges = await server.api.get<{ changed: string[]; left: string[] }>(`/v3/keys/changes?from=${woken.body.next_batch}&to=${ivanLeft.next_batch}`, { token: ivan.access_token });
      assert.deepEqual(leftChanges.body.left, [judy.user_id]);

      // Key changes of someone no longer sharing a room reach no one else.
      await server.api.post('/v3/keys/upload', { device_keys: { ...deviceKeys, keys: { [`curve25519:${judy.device_id}`]: 'def' } } }, { token: judy.access_token });
      const after = await sync(ivan, { since: ivanLeft.next_batch });
      assert.deepEqual(after.device_lists, { changed: [], left: [] });
    });

    if (engine === 'sqlite') {
      it('reads the rooms whose receipts or typing changed once per sync, by position, not once per room', async () => {
        const ivy = await register('ivy');
        const room = await createRoom(ivy);
        const start = await sync(ivy);
        await send(ivy, room, 'to read');
        // The account side's statement, as this sync runs it.
        const proto = Object.getPrototypeOf(new SQLite(':memory:').prepare('SELECT 1')) as Record<string, (...args: unknown[]) => unknown>;
        const all = proto.all!;
        let snapshot: { sql: string; args: unknown[] } | undefined;
        proto.all = function (this: { source: string }, ...args: unknown[]) {
          if (this.source.includes('AS head')) snapshot = { sql: this.source, args: args[0] as unknown[] };
          return all.apply(this, args);
        };
        try {
          await sync(ivy, { since: start.next_batch });
        } finally {
          proto.all = all;
        }
        assert.ok(snapshot, 'the sync ran the account side statement');
        const plan = await server.hs.services.store.db.kysely.executeQuery<{ detail: string }>(CompiledQuery.raw(`EXPLAIN QUERY PLAN ${snapshot.sql}`, snapshot.args));
        const details = plan.rows.map((r) => r.detail);
        for (const table of ['receipts', 'room_typing']) {
          assert.ok(details.some((d) => d.startsWith(`SEARCH ${table} USING INDEX ${table}_stream`)), `${table} read by position: ${details.join('; ')}`);
          assert.ok(!details.some((d) => d.startsWith(`SCAN ${table}`)), `${table} scanned: ${details.join('; ')}`);
        }
        assert.ok(!details.some((d) => d.startsWith('CORRELATED LIST SUBQUERY')), `a list re-read per row: ${details.join('; ')}`);
      });
    }

    it('reads no unchanged room per sync and nothing while a long-poll waits', async () => {
      const kate = await register('kate');
      const rooms: string[] = [];
      for (let i = 0; i < 3; i++) rooms.push(await createRoom(kate));
      // The push processor reads new events in the background; its statements are not the sync's.
      await server.hs.services.push.stop();
      const counter = countStatements();
      try {
        const statementsFor = async (roomCount: number) => {
          while (rooms.length < roomCount) rooms.push(await createRoom(kate));
          const start = await sync(kate);
          await send(kate, rooms[0]!, 'one change');
          const before = counter.count;
          const next = await sync(kate, { since: start.next_batch });
          assert.deepEqual(Object.keys(next.rooms.join), [rooms[0]]);
          return counter.count - before;
        };
        const few = await statementsFor(3);
        const many = await statementsFor(40);
        assert.equal(many, few, `an incremental sync ran ${few} statements in 3 rooms and ${many} in 40`);
        // PostgreSQL: the account side in one statement (with the memberships, room-mates' presence,
        // each changed room's unread counts and whether its receipts or typing changed), then the
        // timeline, and the transaction IDs of the user's own event (12 round trips before the
        // account side was folded, 7 before the rest was).
        if (engine === 'postgres') assert.ok(few <= 3, `an incremental sync with one changed room made ${few} round trips`);

        const start = await sync(kate);
        const waiting = server.api.get<Sync>(`/v3/sync?since=${start.next_batch}&timeout=800`, { token: kate.access_token });
        await until(() => server.hs.services.notifier.waiting === 1, 'the sync to wait');
        const idleFrom = counter.count;
        await new Promise((resolve) => setTimeout(resolve, 500));
        assert.equal(counter.count - idleFrom, 0, 'no statement while waiting');
        assert.equal((await waiting).status, 200);
      } finally {
        counter.restore();
      }
    });
  });
}

describe('sync: rooms across two homeserver processes sharing PostgreSQL', () => {
  const servers = twoProcessesOnePostgres();

  it('wakes a room-mate waiting on one process when a message is sent through the other', async () => {
    const alice = await servers.first.api.register('alice');
    const bob = await servers.second.api.register('bob');
    const created = await servers.first.api.post<{ room_id: string }>('/v3/createRoom', { preset: 'public_chat' }, { token: alice.access_token });
    const roomId = created.body.room_id;
    assert.equal((await servers.second.api.post(`/v3/rooms/${enc(roomId)}/join`, {}, { token: bob.access_token })).status, 200);
    const start = await servers.second.api.get<Sync>('/v3/sync', { token: bob.access_token });
    assert.ok(start.body.rooms.join[roomId]);
    const waiting = servers.second.api.get<Sync>(`/v3/sync?since=${start.body.next_batch}&timeout=20000`, { token: bob.access_token });
    await until(() => servers.second.hs.services.notifier.waiting === 1, 'the sync to wait');
    const sentAt = Date.now();
    const sent = await servers.first.api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/send/m.room.message/x1`, { msgtype: 'm.text', body: 'across' }, { token: alice.access_token });
    const res = await waiting;
    assert.ok(Date.now() - sentAt < 1000, `answered ${Date.now() - sentAt} ms after the send`);
    assert.deepEqual(res.body.rooms.join[roomId]!.timeline.events.map((e) => e.event_id), [sent.body.event_id]);
  });
});
