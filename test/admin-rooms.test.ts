import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN_SECRET, registerWithSecret } from './helpers/admin.js';
import { HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';

const V1 = '/_synapse/admin/v1';
type Json = Record<string, unknown>;

for (const engine of HTTP_ENGINES) {
  describe(`admin API: rooms (${engine})`, () => {
    let server: TestServer;
    let admin: { user_id: string; access_token: string };
    let alice: { user_id: string; access_token: string; device_id: string };
    let bob: { user_id: string; access_token: string };
    let carol: { user_id: string; access_token: string };
    const as = (token: string) => ({ token });
    const asAdmin = () => as(admin.access_token);
    let txn = 0;

    before(async () => {
      server = await startTestServer(engine, { registration_shared_secret: ADMIN_SECRET });
      admin = await registerWithSecret(server, 'root', 'root-password-1', true);
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
      carol = await server.api.register('carol');
    });
    after(async () => server.close());

    const createRoom = async (token: string, body: Json) => {
      const res = await server.api.post<{ room_id: string }>('/v3/createRoom', body, as(token));
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.room_id;
    };
    const join = async (token: string, roomId: string) => assert.equal((await server.api.post(`/v3/join/${encodeURIComponent(roomId)}`, {}, as(token))).status, 200);
    const send = async (token: string, roomId: string, body: string) =>
      (await server.api.put<{ event_id: string }>(`/v3/rooms/${roomId}/send/m.room.message/t${++txn}`, { msgtype: 'm.text', body }, as(token))).body.event_id;
    const list = async (query = '') => (await server.api.get<{ rooms: Json[]; offset: number; total_rooms: number; next_batch?: number; prev_batch?: number }>(`${V1}/rooms${query}`, asAdmin())).body;

    it('lists rooms with Synapse’s fields, searches, orders and pages', async () => {
      const hq = await createRoom(alice.access_token, {
        name: 'Matrix HQ',
        room_alias_name: 'hq',
        visibility: 'public',
        preset: 'public_chat',
        initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
      });
      await join(bob.access_token, hq);
      const space = await createRoom(bob.access_token, { name: 'A space', creation_content: { type: 'm.space', 'm.federate': false } });
      const quiet = await createRoom(carol.access_token, { name: 'quiet corner' });

      const all = await list();
      assert.equal(all.total_rooms, 3);
      assert.equal(all.offset, 0);
      assert.equal(all.next_batch, undefined);
      const byId = new Map(all.rooms.map((r) => [r.room_id as string, r]));
      const room = byId.get(hq)!;
      assert.deepEqual(
        { ...room, state_events: undefined },
        {
          room_id: hq,
          name: 'Matrix HQ',
          canonical_alias: '#hq:test.local',
          joined_members: 2,
          joined_local_members: 2,
          version: server.config.default_room_version,
          creator: alice.user_id,
          encryption: 'm.megolm.v1.aes-sha2',
          federatable: true,
          public: true,
          join_rules: 'public',
          // public_chat writes no m.room.guest_access (as Synapse's preset), and Synapse answers null then.
          guest_access: null,
          history_visibility: 'shared',
          state_events: undefined,
          room_type: null,
        },
      );
      assert.ok((room.state_events as number) >= 8, `state events counted: ${String(room.state_events)}`);
      assert.equal(byId.get(space)!.room_type, 'm.space');
      assert.equal(byId.get(space)!.federatable, false);
      assert.equal(byId.get(space)!.public, false);
      assert.equal(byId.get(quiet)!.encryption, null);

      assert.deepEqual(all.rooms.map((r) => r.name), ['A space', 'Matrix HQ', 'quiet corner'], 'by name by default (code point order)');
      assert.deepEqual((await list('?dir=b')).rooms.map((r) => r.name), ['quiet corner', 'Matrix HQ', 'A space']);
      assert.equal((await list('?order_by=joined_members')).rooms[0]!.room_id, hq, 'the largest room first');
      assert.equal((await list('?order_by=size&dir=b')).rooms[2]!.room_id, hq);
      assert.deepEqual((await list('?search_term=matrix')).rooms.map((r) => r.room_id), [hq], 'name, case-insensitively');
      assert.deepEqual((await list('?search_term=hQ')).rooms.map((r) => r.room_id), [hq], 'mixed case: random room IDs are upper case, so only the name can match');
      assert.deepEqual((await list(`?search_term=${encodeURIComponent(quiet.slice(1, 8))}`)).rooms.map((r) => r.room_id), [quiet], 'room ID');
      assert.deepEqual((await list('?public_rooms=true')).rooms.map((r) => r.room_id), [hq]);
      assert.equal((await list('?public_rooms=false')).total_rooms, 2);
      assert.equal((await list('?empty_rooms=true')).total_rooms, 0);

      const first = await list('?limit=2');
      assert.equal(first.rooms.length, 2);
      assert.equal(first.next_batch, 2);
      assert.equal(first.prev_batch, undefined);
      const second = await list(`?limit=2&from=${first.next_batch}`);
      assert.deepEqual(second.rooms.map((r) => r.name), ['quiet corner']);
      assert.equal(second.prev_batch, 0);
      assert.equal(second.next_batch, undefined);

      for (const bad of ['?order_by=secret', '?dir=sideways', '?from=-3', '?limit=many', '?public_rooms=maybe']) {
        const res = await server.api.get(`${V1}/rooms${bad}`, asAdmin());
        assert.equal(res.status, 400, bad);
        assert.equal(res.body.errcode, 'M_INVALID_PARAM');
      }
    });

    it('shows one room and its members', async () => {
      const roomId = await createRoom(alice.access_token, { name: 'Details', topic: 'All about it', preset: 'public_chat' });
      await join(carol.access_token, roomId);
      await server.api.post(`/v3/rooms/${roomId}/invite`, { user_id: bob.user_id }, as(alice.access_token));
      const details = await server.api.get<Json>(`${V1}/rooms/${roomId}`, asAdmin());
      assert.equal(details.status, 200);
      assert.equal(details.body.name, 'Details');
      assert.equal(details.body.topic, 'All about it');
      assert.equal(details.body.avatar, null);
      assert.equal(details.body.joined_members, 2);
      assert.equal(details.body.joined_local_devices, 2);
      assert.equal(details.body.forgotten, false);
      const members = await server.api.get(`${V1}/rooms/${roomId}/members`, asAdmin());
      assert.deepEqual(members.body, { members: [alice.user_id, carol.user_id], total: 2 }, 'the joined members, not the invited one');
      for (const [path, status, errcode] of [
        [`${V1}/rooms/!unknown:test.local`, 404, 'M_NOT_FOUND'],
        [`${V1}/rooms/!unknown:test.local/members`, 404, 'M_NOT_FOUND'],
        [`${V1}/rooms/not-a-room`, 400, 'M_INVALID_PARAM'],
      ] as const) {
        const res = await server.api.get(path, asAdmin());
        assert.equal(res.status, status, path);
        assert.equal(res.body.errcode, errcode);
      }
    });

    /** Rows of the room in every room table (the event-keyed ones through the room's event IDs). */
    const rowCounts = async (roomId: string, eventIds: string[]) => {
      const db = server.hs.services.store.db.kysely;
      const count = async (rows: Promise<unknown[]>) => (await rows).length;
      const ids = eventIds.length > 0 ? eventIds : [''];
      const groups = (await db.selectFrom('state_groups').select('id').where('room_id', '=', roomId).execute()).map((g) => g.id);
      return {
        rooms: await count(db.selectFrom('rooms').select('room_id').where('room_id', '=', roomId).execute()),
        events: await count(db.selectFrom('events').select('event_id').where('room_id', '=', roomId).execute()),
        event_edges: await count(db.selectFrom('event_edges').select('event_id').where('event_id', 'in', ids).execute()),
        event_auth: await count(db.selectFrom('event_auth').select('event_id').where('event_id', 'in', ids).execute()),
        event_txns: await count(db.selectFrom('event_txns').select('event_id').where('event_id', 'in', ids).execute()),
        event_relations: await count(db.selectFrom('event_relations').select('event_id').where('room_id', '=', roomId).execute()),
        event_search: await count(db.selectFrom('event_search').select('event_id').where('room_id', '=', roomId).execute()),
        forward_extremities: await count(db.selectFrom('forward_extremities').select('event_id').where('room_id', '=', roomId).execute()),
        state_groups: groups.length,
        state_group_entries: await count(db.selectFrom('state_group_entries').select('event_id').where('state_group', 'in', groups.length > 0 ? groups : [-1]).execute()),
        current_state: await count(db.selectFrom('current_state').select('event_id').where('room_id', '=', roomId).execute()),
        room_members: await count(db.selectFrom('room_members').select('user_id').where('room_id', '=', roomId).execute()),
        room_aliases: await count(db.selectFrom('room_aliases').select('alias').where('room_id', '=', roomId).execute()),
        account_data: await count(db.selectFrom('account_data').select('type').where('room_id', '=', roomId).execute()),
      };
    };
    const eventIdsOf = async (roomId: string) => (await server.hs.services.store.db.kysely.selectFrom('events').select('event_id').where('room_id', '=', roomId).execute()).map((e) => e.event_id);

    it('deletes and purges a room: local members leave, its aliases go, every row of it is removed, other rooms untouched', async () => {
      const doomed = await createRoom(alice.access_token, { name: 'Doomed', room_alias_name: 'doomed', visibility: 'public', preset: 'public_chat' });
      await join(bob.access_token, doomed);
      await server.api.post(`/v3/rooms/${doomed}/invite`, { user_id: carol.user_id }, as(alice.access_token));
      await server.api.put(`/v3/directory/room/${encodeURIComponent('#doomed-too:test.local')}`, { room_id: doomed }, as(alice.access_token));
      const hello = await send(alice.access_token, doomed, 'hello');
      await send(bob.access_token, doomed, 'bye');
      await server.api.put(`/v3/rooms/${doomed}/send/m.room.message/t${++txn}`, { msgtype: 'm.text', body: 'in a thread', 'm.relates_to': { rel_type: 'm.thread', event_id: hello } }, as(bob.access_token));
      await server.api.put(`/v3/user/${alice.user_id}/rooms/${doomed}/account_data/m.fully_read.test`, { event_id: 'x' }, as(alice.access_token));
      const survivor = await createRoom(alice.access_token, { name: 'Survivor' });
      await send(alice.access_token, survivor, 'still here');

      const doomedEvents = await eventIdsOf(doomed);
      const survivorBefore = await rowCounts(survivor, await eventIdsOf(survivor));
      const before = await rowCounts(doomed, doomedEvents);
      for (const [table, n] of Object.entries(before)) assert.ok(n > 0, `the room has rows in ${table} before`);

      const res = await server.api.delete<{ kicked_users: string[]; failed_to_kick_users: string[]; local_aliases: string[]; new_room_id: null }>(`${V1}/rooms/${doomed}`, {}, asAdmin());
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body.kicked_users.sort(), [alice.user_id, bob.user_id, carol.user_id].sort());
      assert.deepEqual(res.body.failed_to_kick_users, []);
      assert.deepEqual(res.body.local_aliases.sort(), ['#doomed-too:test.local', '#doomed:test.local']);
      assert.equal(res.body.new_room_id, null);

      const afterCounts = await rowCounts(doomed, doomedEvents);
      for (const [table, n] of Object.entries(afterCounts)) assert.equal(n, 0, `no rows of the room left in ${table}`);
      assert.deepEqual(await rowCounts(survivor, await eventIdsOf(survivor)), survivorBefore, 'the other room is untouched');
      assert.equal((await server.api.get(`${V1}/rooms/${doomed}`, asAdmin())).status, 404);
      assert.ok(!(await list()).rooms.some((r) => r.room_id === doomed));
      assert.equal((await server.api.get(`/v3/directory/room/${encodeURIComponent('#doomed:test.local')}`)).status, 404);
      const joined = await server.api.get<{ joined_rooms: string[] }>('/v3/joined_rooms', as(bob.access_token));
      assert.ok(!joined.body.joined_rooms.includes(doomed));
      assert.equal((await server.api.post(`/v3/join/${doomed}`, {}, as(bob.access_token))).status, 404, 'nothing left to join');
      // The survivor still works.
      assert.ok(await send(alice.access_token, survivor, 'after the purge'));
    });

    it('blocks a room: members leave and no one may join it again; block without purge keeps its history', async () => {
      const blocked = await createRoom(alice.access_token, { name: 'Blocked', preset: 'public_chat' });
      await join(bob.access_token, blocked);
      const res = await server.api.delete<Json>(`${V1}/rooms/${blocked}`, { block: true, purge: false }, asAdmin());
      assert.equal(res.status, 200);
      assert.deepEqual((res.body.kicked_users as string[]).sort(), [alice.user_id, bob.user_id].sort());
      const details = await server.api.get<Json>(`${V1}/rooms/${blocked}`, asAdmin());
      assert.equal(details.status, 200, 'not purged');
      assert.equal(details.body.joined_members, 0);
      for (const who of [alice, bob, carol]) {
        const refused = await server.api.post(`/v3/join/${blocked}`, {}, as(who.access_token));
        assert.equal(refused.status, 403);
        assert.equal(refused.body.errcode, 'M_FORBIDDEN');
        const viaState = await server.api.put(`/v3/rooms/${blocked}/state/m.room.member/${who.user_id}`, { membership: 'join' }, as(who.access_token));
        assert.equal(viaState.status, 403);
      }
      assert.equal((await server.api.get<Json>(`${V1}/rooms/${blocked}`, asAdmin())).body.joined_members, 0);

      // A room this server does not know yet can be blocked in advance, and only blocked.
      const unknown = await server.api.delete<Json>(`${V1}/rooms/!future:elsewhere.example`, { block: true }, asAdmin());
      assert.equal(unknown.status, 200);
      assert.deepEqual(unknown.body, { kicked_users: [], failed_to_kick_users: [], local_aliases: [], new_room_id: null });
      assert.equal(await server.hs.services.store.adminRooms.isBlocked('!future:elsewhere.example'), true);
    });

    it('refuses a bad deletion with a clear error and changes nothing', async () => {
      const kept = await createRoom(alice.access_token, { name: 'Kept', room_alias_name: 'kept', preset: 'public_chat' });
      await join(carol.access_token, kept);
      const before = await rowCounts(kept, await eventIdsOf(kept));
      for (const [roomId, body, status, errcode] of [
        [kept, { new_room_user_id: admin.user_id }, 400, 'M_INVALID_PARAM'],
        [kept, { block: 'yes' }, 400, 'M_BAD_JSON'],
        [kept, { purge: 1 }, 400, 'M_BAD_JSON'],
        [kept, [], 400, 'M_BAD_JSON'],
        ['!unknown:test.local', {}, 404, 'M_NOT_FOUND'],
        ['not-a-room', { block: true }, 400, 'M_INVALID_PARAM'],
      ] as const) {
        const res = await server.api.delete(`${V1}/rooms/${encodeURIComponent(roomId)}`, body, asAdmin());
        assert.equal(res.status, status, `${roomId} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.errcode, errcode);
      }
      const denied = await server.api.delete(`${V1}/rooms/${kept}`, {}, as(alice.access_token));
      assert.equal(denied.status, 403, 'even the room’s creator needs to be a server admin');
      assert.deepEqual(await rowCounts(kept, await eventIdsOf(kept)), before);
      assert.equal(await server.hs.services.store.adminRooms.isBlocked(kept), false);
      assert.equal(await server.hs.services.store.adminRooms.isBlocked('not-a-room'), false);
      assert.deepEqual((await server.api.get(`${V1}/rooms/${kept}/members`, asAdmin())).body, { members: [alice.user_id, carol.user_id], total: 2 });
    });
  });
}
