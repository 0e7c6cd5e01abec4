import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN_SECRET, registerWithSecret } from './helpers/admin.js';
import { enc, roomActions, type User } from './helpers/room-actions.js';
import { prepared, SdkClients } from './helpers/sdk.js';
import { ENGINES, HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';
import { RoomService } from '../src/services/rooms/rooms.js';

type ClientEvent = { event_id: string; type: string; sender: string; state_key?: string; content: Record<string, unknown>; unsigned?: Record<string, unknown> };
type TimelineSync = { next_batch: string; rooms: { join: Record<string, { timeline: { events: ClientEvent[] } }> } };

/** A gate the test opens: room writes of the propagation wait on it. */
function gate(): { wait: () => Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { wait: () => opened, open };
}

// Both engines: the job is a table written with engine-specific SQL (upsert, UPDATE ... RETURNING),
// taken up again after a restart, and its room writes lock rooms the engine's way.
for (const engine of ENGINES) {
  describe(`profile changes reach the user's rooms (${engine})`, () => {
    let server: TestServer;
    let alice: User;
    let bob: User;
    const { sync, createRoom, join, send } = roomActions(() => server);
    const timelineSync = async (who: User, since: string) => (await server.api.get<TimelineSync>(`/v3/sync?since=${since}&timeout=0`, { token: who.access_token })).body;
    const members = async (who: User, roomId: string) => (await server.api.get<{ chunk: ClientEvent[] }>(`/v3/rooms/${enc(roomId)}/members`, { token: who.access_token })).body.chunk;
    const memberOf = async (who: User, roomId: string, userId: string) => (await members(who, roomId)).find((e) => e.state_key === userId)!;
    const setProfile = (who: User, field: 'displayname' | 'avatar_url', value: string | null) =>
      server.api.put(`/v3/profile/${enc(who.user_id)}/${field}`, { [field]: value }, { token: who.access_token });
    /** The member events of `userId` in the room's timeline of a sync answer. */
    const memberEvents = (body: TimelineSync, roomId: string, userId: string) =>
      (body.rooms.join[roomId]?.timeline.events ?? []).filter((e) => e.type === 'm.room.member' && e.state_key === userId);

    before(async () => {
      // Tight message limits: the propagation must not be held up by them.
      server = await startTestServer(engine, { rc_message: { per_second: 0.1, burst_count: 3 }, registration_shared_secret: ADMIN_SECRET });
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
    });
    after(() => server.close());

    it('writes a join with the new name into every joined room, seen in syncs and /members; left rooms untouched; a per-room name overwritten', async () => {
      const [r1, r2, left] = [await createRoom(alice), await createRoom(alice), await createRoom(alice)];
      for (const roomId of [r1, r2, left]) await join(bob, roomId);
      // A per-room name in r2, with other content Synapse does not carry over.
      const own = await server.api.put(`/v3/rooms/${enc(r2)}/state/m.room.member/${enc(bob.user_id)}`, { membership: 'join', displayname: 'Bobby in r2', reason: 'nickname' }, { token: bob.access_token });
      assert.equal(own.status, 200, JSON.stringify(own.body));
      assert.equal((await server.api.post(`/v3/rooms/${enc(left)}/leave`, {}, { token: bob.access_token })).status, 200);
      const leftBefore = await memberOf(alice, left, bob.user_id);
      const since = (await sync(alice)).next_batch;

      assert.equal((await setProfile(bob, 'displayname', 'Robert')).status, 200);
      await until(async () => (await memberOf(alice, r1, bob.user_id)).content.displayname === 'Robert' && (await memberOf(alice, r2, bob.user_id)).content.displayname === 'Robert', 'both joined rooms to show the new name');

      const seen = await timelineSync(alice, since);
      for (const roomId of [r1, r2]) {
        const events = memberEvents(seen, roomId, bob.user_id);
        assert.equal(events.length, 1, `one new member event in ${roomId}`);
        assert.equal(events[0]!.sender, bob.user_id);
        // What Synapse sends: a join with the global profile, nothing else of the old event.
        assert.deepEqual(events[0]!.content, { membership: 'join', displayname: 'Robert' });
        assert.equal((events[0]!.unsigned?.prev_content as Record<string, unknown>).displayname, roomId === r2 ? 'Bobby in r2' : 'bob');
      }
      assert.equal(memberEvents(seen, left, bob.user_id).length, 0, 'nothing new in the room bob left');
      assert.equal((await memberOf(alice, left, bob.user_id)).event_id, leftBefore.event_id, 'the left room keeps the leave as it was');
      assert.deepEqual((await server.api.get(`/v3/profile/${enc(bob.user_id)}`)).body, { displayname: 'Robert' });
    });

    it('writes the avatar likewise, with the display name kept', async () => {
      const roomId = await createRoom(alice);
      await join(bob, roomId);
      const since = (await sync(alice)).next_batch;
      assert.equal((await setProfile(bob, 'avatar_url', 'mxc://test.local/bobface')).status, 200);
      await until(async () => (await memberOf(alice, roomId, bob.user_id)).content.avatar_url === 'mxc://test.local/bobface', 'the room to show the new avatar');
      const events = memberEvents(await timelineSync(alice, since), roomId, bob.user_id);
      assert.equal(events.length, 1);
      assert.deepEqual(events[0]!.content, { membership: 'join', displayname: 'Robert', avatar_url: 'mxc://test.local/bobface' });

      // Cleared: the field leaves the member event.
      assert.equal((await setProfile(bob, 'avatar_url', null)).status, 200);
      await until(async () => !('avatar_url' in (await memberOf(alice, roomId, bob.user_id)).content), 'the avatar to be gone from the member event');
      assert.deepEqual((await memberOf(alice, roomId, bob.user_id)).content, { membership: 'join', displayname: 'Robert' });
    });

    it('answers at once for a user in 30 rooms, then updates all 30 even with the message limit spent; a room whose rules refuse is skipped', async () => {
      const carol = await server.api.register('carol');
      const rooms: string[] = [];
      for (let i = 0; i < 30; i++) {
        const roomId = await createRoom(alice);
        await join(carol, roomId);
        rooms.push(roomId);
      }
      // A room where carol may not send her join again: its join rule lets nobody join.
      const closed = await createRoom(alice);
      await join(carol, closed);
      assert.equal((await server.api.put(`/v3/rooms/${enc(closed)}/state/m.room.join_rules/`, { join_rule: 'private' }, { token: alice.access_token })).status, 200);
      const closedBefore = await memberOf(alice, closed, carol.user_id);
      // Carol's message budget (burst 3) is spent.
      let limited = false;
      for (let i = 0; i < 5 && !limited; i++) {
        const res = await server.api.put(`/v3/rooms/${enc(rooms[0]!)}/send/m.room.message/spend${i}`, { msgtype: 'm.text', body: 'x' }, { token: carol.access_token });
        limited = res.status === 429;
      }
      assert.ok(limited, 'carol is rate-limited');

      // Room writes wait on a gate: the answer must not.
      const held = gate();
      const rs = server.hs.services.rooms;
      const original = rs.refreshProfile.bind(rs);
      rs.refreshProfile = async (userId, roomId) => {
        await held.wait();
        return original(userId, roomId);
      };
      try {
        const started = Date.now();
        const res = await setProfile(carol, 'displayname', 'Caroline');
        const answeredMs = Date.now() - started;
        assert.equal(res.status, 200);
        assert.equal((await memberOf(alice, rooms[0]!, carol.user_id)).content.displayname, 'carol', 'answered before any room was written');
        held.open();
        await until(async () => {
          for (const roomId of rooms) if ((await memberOf(alice, roomId, carol.user_id)).content.displayname !== 'Caroline') return false;
          return true;
        }, 'all 30 rooms to show the new name', 30_000);
        console.log(`# ${engine}: PUT displayname answered in ${answeredMs} ms (writes held); all 30 rooms written ${Date.now() - started} ms after the request`);
      } finally {
        rs.refreshProfile = original;
      }
      assert.equal((await memberOf(alice, closed, carol.user_id)).event_id, closedBefore.event_id, 'the room that refuses keeps her old member event');
      assert.equal((await server.hs.services.store.profilePropagations.get(carol.user_id)), undefined, 'the job is done and gone');
    });

    it('resumes after a restart part-way, from the room it got to', async () => {
      const dave = await server.api.register('dave');
      const rooms: string[] = [];
      for (let i = 0; i < 12; i++) {
        const roomId = await createRoom(alice);
        await join(dave, roomId);
        rooms.push(roomId);
      }
      const since = (await sync(alice)).next_batch;
      // The first process writes 4 rooms, and stops while writing the 5th.
      const held = gate();
      const rs = server.hs.services.rooms;
      const original = rs.refreshProfile.bind(rs);
      let calls = 0;
      rs.refreshProfile = async (userId, roomId) => {
        if (++calls === 5) await held.wait();
        return original(userId, roomId);
      };
      assert.equal((await setProfile(dave, 'displayname', 'David')).status, 200);
      await until(() => calls === 5, 'the 5th room write to start');
      // The next process's room writes, counted: it must start from the room after the 5th.
      const proto = RoomService.prototype;
      const protoOriginal = proto.refreshProfile;
      let resumedCalls = 0;
      proto.refreshProfile = async function (this: RoomService, userId: string, roomId: string) {
        if (userId === dave.user_id) resumedCalls++;
        return protoOriginal.call(this, userId, roomId);
      };
      try {
        // The first process's propagation (its `closed`: shutdown reached it; it then finishes the room it is on and stops).
        const propagation = server.hs.services.profilePropagation as unknown as { closed: boolean };
        const restarting = server.restart();
        await until(() => propagation.closed, 'the shutdown to stop the propagation');
        held.open();
        await restarting;
        await until(async () => {
          for (const roomId of rooms) if ((await memberOf(alice, roomId, dave.user_id)).content.displayname !== 'David') return false;
          return true;
        }, 'the restarted server to write the remaining rooms');
      } finally {
        proto.refreshProfile = protoOriginal;
      }
      assert.equal(calls, 5, 'the first process stopped after the room it was on');
      assert.equal(resumedCalls, rooms.length - 5, 'the restarted one went on from the next room');
      await until(async () => (await server.hs.services.store.profilePropagations.get(dave.user_id)) === undefined, 'the job to be done');
      const seen = await timelineSync(alice, since);
      for (const roomId of rooms) assert.equal(memberEvents(seen, roomId, dave.user_id).length, 1, `exactly one new member event in each room (${roomId})`);
    });

    it('takes up a job whose process died, once its lease ran out', async () => {
      const finn = await server.api.register('finn');
      const roomId = await createRoom(alice);
      await join(finn, roomId);
      // As a process that died would leave it: the profile changed, the job held by a lease that then ran out.
      const store = server.hs.services.store;
      await store.users.setProfileField(finn.user_id, 'displayname', 'Finnegan');
      await store.profilePropagations.request(finn.user_id);
      const now = Date.now();
      assert.ok(await store.profilePropagations.claim(finn.user_id, now, now + 200));
      await server.hs.services.profilePropagation.takeUpAbandoned();
      assert.equal((await memberOf(alice, roomId, finn.user_id)).content.displayname, 'finn', 'not while the lease holds');
      await new Promise((resolve) => setTimeout(resolve, 250));
      // What the maintenance run does every 10 minutes.
      await server.hs.services.profilePropagation.takeUpAbandoned();
      await until(async () => (await memberOf(alice, roomId, finn.user_id)).content.displayname === 'Finnegan', 'the room to get the new name');
    });

    it("an admin's change of a user's profile reaches their rooms too (as Synapse)", async () => {
      const admin = await registerWithSecret(server, 'root', 'root-password-1', true);
      const gil = await server.api.register('gil');
      const roomId = await createRoom(alice);
      await join(gil, roomId);
      const res = await server.api.put(`/_synapse/admin/v2/users/${enc(gil.user_id)}`, { displayname: 'Gilbert' }, { token: admin.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      await until(async () => (await memberOf(alice, roomId, gil.user_id)).content.displayname === 'Gilbert', 'the room to get the name the admin set');
      assert.equal((await memberOf(alice, roomId, gil.user_id)).sender, gil.user_id, 'sent as the user themself');
    });

    it('a newer change while rooms are being written wins everywhere', async () => {
      const erin = await server.api.register('erin');
      const rooms: string[] = [];
      for (let i = 0; i < 6; i++) {
        const roomId = await createRoom(alice);
        await join(erin, roomId);
        rooms.push(roomId);
      }
      await send(erin, rooms[0]!, 'hello');
      assert.equal((await setProfile(erin, 'displayname', 'First')).status, 200);
      assert.equal((await setProfile(erin, 'displayname', 'Second')).status, 200);
      await until(async () => {
        for (const roomId of rooms) if ((await memberOf(alice, roomId, erin.user_id)).content.displayname !== 'Second') return false;
        return true;
      }, 'every room to end with the newer name');
      await until(async () => (await server.hs.services.store.profilePropagations.get(erin.user_id)) === undefined, 'the job to be done');
    });
  });
}

for (const engine of HTTP_ENGINES) {
  describe(`profile lookup limits (${engine})`, () => {
    const servers: TestServer[] = [];
    after(async () => {
      for (const s of servers) await s.close();
    });
    const start = async (overrides: Record<string, unknown>) => {
      const s = await startTestServer(engine, overrides);
      servers.push(s);
      return s;
    };

    it('answers without a token by default, and only with one under require_auth_for_profile_requests', async () => {
      const open = await start({});
      const u = await open.api.register('opal');
      assert.equal((await open.api.get(`/v3/profile/${enc(u.user_id)}`)).status, 200);
      assert.equal((await open.api.get(`/v3/profile/${enc(u.user_id)}/displayname`)).status, 200);

      const closed = await start({ require_auth_for_profile_requests: true });
      const v = await closed.api.register('vera');
      const w = await closed.api.register('walt');
      for (const path of [`/v3/profile/${enc(v.user_id)}`, `/v3/profile/${enc(v.user_id)}/displayname`, `/v3/profile/${enc(v.user_id)}/avatar_url`]) {
        const res = await closed.api.get(path);
        assert.equal(res.status, 401, path);
        assert.equal(res.body.errcode, 'M_MISSING_TOKEN');
      }
      // Any user with a token may read it: sharing a room is not asked for.
      assert.deepEqual((await closed.api.get(`/v3/profile/${enc(v.user_id)}`, { token: w.access_token })).body, { displayname: 'vera' });
      assert.equal((await closed.api.get(`/v3/profile/${enc(v.user_id)}`, { token: 'not-a-token' })).status, 401);
    });

    it('under limit_profile_requests_to_users_who_share_rooms answers only room-mates and oneself', async () => {
      const s = await start({ limit_profile_requests_to_users_who_share_rooms: true });
      const { createRoom, join } = roomActions(() => s);
      const [ann, ben, cat] = [await s.api.register('ann'), await s.api.register('ben'), await s.api.register('cat')];
      const roomId = await createRoom(ann);
      await join(ben, roomId);
      const lookup = (who: User | undefined, target: User, field = '') => s.api.get(`/v3/profile/${enc(target.user_id)}${field}`, who ? { token: who.access_token } : {});

      assert.deepEqual((await lookup(ben, ann)).body, { displayname: 'ann' }, 'a room-mate');
      assert.equal((await lookup(cat, cat)).status, 200, 'oneself, sharing no room');
      for (const field of ['', '/displayname', '/avatar_url']) {
        const res = await lookup(cat, ann, field);
        assert.equal(res.status, 403, field);
        assert.equal(res.body.errcode, 'M_FORBIDDEN');
      }
      const unknown = await s.api.get('/v3/profile/@nobody:test.local', { token: cat.access_token });
      assert.equal(unknown.status, 403, 'an unknown user shares no room either');
      assert.equal((await lookup(undefined, ann)).status, 401, 'no token: no requester to share a room with');

      await join(cat, roomId);
      assert.equal((await lookup(cat, ann)).status, 200, 'once she joined');
      assert.equal((await s.api.post(`/v3/rooms/${enc(roomId)}/leave`, {}, { token: cat.access_token })).status, 200);
      assert.equal((await lookup(cat, ann)).status, 403, 'once she left');
      // An invite is no shared room.
      assert.equal((await s.api.post(`/v3/rooms/${enc(roomId)}/invite`, { user_id: cat.user_id }, { token: ann.access_token })).status, 200);
      assert.equal((await lookup(cat, ann)).status, 403, 'invited only');
    });
  });

  describe(`typing stops when the typist leaves (${engine})`, () => {
    let server: TestServer;
    const { sync, createRoom, join } = roomActions(() => server);
    before(async () => {
      server = await startTestServer(engine);
    });
    after(() => server.close());

    const typists = (body: Awaited<ReturnType<typeof sync>>, roomId: string) =>
      (body.rooms.join[roomId]?.ephemeral.events ?? []).filter((e) => e.type === 'm.typing').map((e) => e.content.user_ids as string[])[0];
    const type = (who: User, roomId: string) => server.api.put(`/v3/rooms/${enc(roomId)}/typing/${enc(who.user_id)}`, { typing: true, timeout: 60_000 }, { token: who.access_token });

    it('on leave, kick and ban, room-mates see the typist go in the sync that brings the member event', async () => {
      const [amy, bo, cy, di] = [await server.api.register('amy'), await server.api.register('bo'), await server.api.register('cy'), await server.api.register('di')];
      const roomId = await createRoom(amy);
      for (const u of [bo, cy, di]) await join(u, roomId);
      for (const u of [bo, cy, di]) assert.equal((await type(u, roomId)).status, 200);
      let token = (await sync(amy)).next_batch;
      assert.deepEqual(typists(await sync(amy), roomId), [bo.user_id, cy.user_id, di.user_id].sort());

      const steps: [string, () => Promise<{ status: number }>, string][] = [
        ['leave', () => server.api.post(`/v3/rooms/${enc(roomId)}/leave`, {}, { token: bo.access_token }), bo.user_id],
        ['kick', () => server.api.post(`/v3/rooms/${enc(roomId)}/kick`, { user_id: cy.user_id }, { token: amy.access_token }), cy.user_id],
        ['ban', () => server.api.post(`/v3/rooms/${enc(roomId)}/ban`, { user_id: di.user_id }, { token: amy.access_token }), di.user_id],
      ];
      const still = new Set([bo.user_id, cy.user_id, di.user_id]);
      for (const [what, act, gone] of steps) {
        assert.equal((await act()).status, 200, what);
        still.delete(gone);
        const next = await sync(amy, { since: token });
        const timeline = next.rooms.join[roomId]!.timeline.events as unknown as ClientEvent[];
        assert.ok(timeline.some((e) => e.type === 'm.room.member' && e.state_key === gone), `${what}: the member event`);
        assert.deepEqual(typists(next, roomId), [...still].sort(), `${what}: the typist is gone from m.typing`);
        assert.deepEqual(typists(await sync(amy), roomId), still.size > 0 ? [...still].sort() : undefined, `${what}: an initial sync agrees`);
        token = next.next_batch;
      }
    });
  });

  describe(`matrix-js-sdk sees a room-mate's new name (${engine})`, () => {
    let server: TestServer;
    const clients = new SdkClients(() => server.url);
    before(async () => {
      server = await startTestServer(engine);
    });
    after(async () => {
      clients.stopAll();
      await server.close();
    });

    it('RoomMember.name follows the profile change', async () => {
      const { createRoom, join } = roomActions(() => server);
      const [fay, gus] = [await server.api.register('fay'), await server.api.register('gus')];
      const roomId = await createRoom(fay);
      await join(gus, roomId);
      const client = clients.create({ userId: fay.user_id, accessToken: fay.access_token, deviceId: fay.device_id });
      const ready = prepared(client);
      await client.startClient({ initialSyncLimit: 20, lazyLoadMembers: true });
      await ready;
      const nameOfGus = () => client.getRoom(roomId)?.getMember(gus.user_id)?.name;
      await until(() => nameOfGus() === 'gus', 'the client to know gus');
      assert.equal((await server.api.put(`/v3/profile/${enc(gus.user_id)}/displayname`, { displayname: 'Gustav' }, { token: gus.access_token })).status, 200);
      await until(() => nameOfGus() === 'Gustav', 'RoomMember.name to become Gustav');
      assert.equal(nameOfGus(), 'Gustav');
    });
  });
}
