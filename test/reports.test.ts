import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN_SECRET, registerWithSecret } from './helpers/admin.js';
import { enc, roomActions, type User } from './helpers/room-actions.js';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

const V1 = '/_synapse/admin/v1';
type Json = Record<string, unknown>;
type Report = { id: number; received_ts: number; room_id: string; name: string | null; canonical_alias: string | null; event_id: string; user_id: string; reason: string | null; score: number | null; sender: string };
type Page = { event_reports: Report[]; total: number; next_token?: number };

// Both engines: report IDs come from an identity column (bigserial on PostgreSQL, AUTOINCREMENT on
// SQLite), and the admin list filters by substring with each engine's own function.
for (const engine of ENGINES) {
  describe(`reporting content, and the event reports admin API (${engine})`, () => {
    let server: TestServer;
    let admin: User;
    let alice: User;
    let bob: User;
    let carol: User;
    const actions = roomActions(() => server);
    const as = (who: User) => ({ token: who.access_token });
    let room: string;
    let quiet: string;
    const bobSaid: string[] = [];

    before(async () => {
      server = await startTestServer(engine, { registration_shared_secret: ADMIN_SECRET, allow_guest_access: true });
      admin = await registerWithSecret(server, 'root', 'root-password-1', true);
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
      carol = await server.api.register('carol');
      room = await actions.createRoom(alice, { preset: 'public_chat', name: 'Noisy room', room_alias_name: 'noisy' });
      await actions.join(bob, room);
      for (const body of ['one', 'two', 'three']) bobSaid.push(await actions.send(bob, room, body));
      quiet = await actions.createRoom(alice, { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }] });
    });
    after(async () => server.close());

    const reportEvent = (who: User, roomId: string, eventId: string, body: Json = { reason: 'rude' }) => server.api.post(`/v3/rooms/${enc(roomId)}/report/${enc(eventId)}`, body, as(who));
    const list = async (query = '') => {
      const res = await server.api.get<Page>(`${V1}/event_reports${query}`, as(admin));
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    };
    const roomReports = () => server.hs.services.store.db.kysely.selectFrom('room_reports').selectAll().orderBy('id').execute();

    it('stores a report of an event the reporter can see, as the admin API shows it', async () => {
      const res = await reportEvent(alice, room, bobSaid[0]!, { reason: 'rude', score: -80 });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body, {});
      const page = await list();
      assert.equal(page.total, 1);
      assert.equal(page.next_token, undefined);
      const [report] = page.event_reports;
      assert.ok(report!.id >= 1 && Math.abs(report!.received_ts - Date.now()) < 60_000);
      assert.deepEqual({ ...report, id: 0, received_ts: 0 }, {
        id: 0,
        received_ts: 0,
        room_id: room,
        name: 'Noisy room',
        canonical_alias: '#noisy:test.local',
        event_id: bobSaid[0],
        user_id: alice.user_id,
        reason: 'rude',
        score: -80,
        sender: bob.user_id,
      });

      const details = await server.api.get<Report & { event_json: Json }>(`${V1}/event_reports/${report!.id}`, as(admin));
      assert.equal(details.status, 200);
      assert.equal(details.body.event_id, bobSaid[0]);
      assert.equal((details.body.event_json.content as Json).body, 'one');
      assert.equal(details.body.event_json.sender, bob.user_id);

      // Neither reason nor score is required for an event.
      assert.equal((await reportEvent(carol, room, bobSaid[1]!, {})).status, 404, 'not joined yet');
      await actions.join(carol, room);
      assert.equal((await reportEvent(carol, room, bobSaid[1]!, {})).status, 200);
      const bare = (await list()).event_reports[0]!;
      assert.equal(bare.reason, null);
      assert.equal(bare.score, null);
      assert.equal(bare.user_id, carol.user_id);
    });

    it('answers 404 M_NOT_FOUND for an unknown event, one of another room, one the reporter cannot see, or a room they are not in; and stores nothing', async () => {
      const before = (await list()).total;
      const early = await actions.send(alice, quiet, 'before carol came');
      await actions.join(carol, quiet);
      for (const [who, roomId, eventId] of [
        [alice, room, '$nosuchevent'],
        [alice, quiet, bobSaid[0]!],
        [carol, quiet, early],
        [bob, quiet, early],
        [alice, '!nosuchroom:test.local', bobSaid[0]!],
      ] as const) {
        const res = await reportEvent(who, roomId, eventId);
        assert.equal(res.status, 404, `${who.user_id} ${roomId} ${eventId}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.errcode, 'M_NOT_FOUND');
      }
      assert.equal((await list()).total, before);
    });

    it('refuses a score outside -100..0 or of the wrong type, and a reason that is not a string (400)', async () => {
      const before = (await list()).total;
      for (const body of [{ score: 1 }, { score: -101 }, { score: 'bad' }, { score: -5.5 }, { reason: 42 }]) {
        const res = await reportEvent(alice, room, bobSaid[2]!, body);
        assert.equal(res.status, 400, JSON.stringify(body));
      }
      assert.equal((await list()).total, before);
    });

    it('stores a report of a room, from anyone; 404 for a room the server does not have; 400 without a reason', async () => {
      const dave = await server.api.register('dave');
      const res = await server.api.post(`/v3/rooms/${enc(room)}/report`, { reason: 'spam room' }, as(dave));
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body, {});
      const stored = await roomReports();
      assert.equal(stored.length, 1);
      assert.deepEqual({ ...stored[0], id: undefined, received_ts: undefined }, { id: undefined, received_ts: undefined, room_id: room, user_id: dave.user_id, reason: 'spam room' });
      const unknown = await server.api.post(`/v3/rooms/${enc('!nosuchroom:test.local')}/report`, { reason: 'x' }, as(dave));
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.errcode, 'M_NOT_FOUND');
      assert.equal((await server.api.post(`/v3/rooms/${enc(room)}/report`, {}, as(dave))).status, 400);
      assert.equal((await server.api.post(`/v3/rooms/${enc(room)}/report`, { reason: '' }, as(dave))).status, 200, 'the reason may be blank');
      assert.equal((await roomReports()).length, 2);
      const guest = (await server.api.post<User>('/v3/register?kind=guest', {})).body;
      const refused = await server.api.post(`/v3/rooms/${enc(room)}/report`, { reason: 'guest' }, as(guest));
      assert.equal(refused.status, 403);
      assert.equal(refused.body.errcode, 'M_GUEST_ACCESS_FORBIDDEN');
      assert.equal((await reportEvent(guest, room, bobSaid[0]!)).body.errcode, 'M_GUEST_ACCESS_FORBIDDEN');
      assert.equal((await roomReports()).length, 2);
    });

    it('lists reports in pages, newest first by default, filtered by reporter, room and sender', async () => {
      for (const eventId of bobSaid) assert.equal((await reportEvent(alice, room, eventId, { reason: `again ${eventId}` })).status, 200);
      await actions.join(bob, quiet);
      const aliceQuiet = await actions.send(alice, quiet, 'mine');
      assert.equal((await reportEvent(bob, quiet, aliceQuiet, { reason: 'hers' })).status, 200);

      const all = await list('?limit=1000');
      const total = all.total;
      assert.equal(all.event_reports.length, total);
      const ids = all.event_reports.map((r) => r.id);
      assert.deepEqual(ids, [...ids].sort((a, b) => b - a), 'newest first');

      const seen: number[] = [];
      let from: number | undefined = 0;
      let pages = 0;
      while (from !== undefined) {
        const page = await list(`?dir=f&limit=2&from=${from}`);
        assert.equal(page.total, total);
        assert.ok(page.event_reports.length <= 2);
        seen.push(...page.event_reports.map((r) => r.id));
        from = page.next_token;
        pages += 1;
      }
      assert.deepEqual(seen, [...ids].reverse(), 'forward pages cover every report once, oldest first');
      assert.equal(pages, Math.ceil(total / 2));

      const byAlice = await list(`?user_id=${enc('@alice')}`);
      assert.ok(byAlice.total >= 4 && byAlice.event_reports.every((r) => r.user_id === alice.user_id));
      const inQuiet = await list(`?room_id=${enc(quiet)}`);
      assert.deepEqual(inQuiet.event_reports.map((r) => r.event_id), [aliceQuiet]);
      assert.equal(inQuiet.total, 1);
      const againstAlice = await list(`?event_sender_user_id=${enc(alice.user_id)}`);
      assert.deepEqual(againstAlice.event_reports.map((r) => r.reason), ['hers']);
      assert.equal((await list(`?event_sender_user_id=${enc('@alice')}`)).total, 0, 'the sender filter matches whole user IDs');
      assert.equal((await list(`?user_id=${enc('%')}`)).total, 0, 'no LIKE wildcards');
      for (const query of ['?dir=x', '?limit=-1', '?from=abc']) {
        const res = await server.api.get(`${V1}/event_reports${query}`, as(admin));
        assert.equal(res.status, 400, query);
      }
    });

    it('reads and deletes one report; 404 for an unknown one, 400 for an ID that is not a positive integer', async () => {
      const [newest] = (await list('?limit=1')).event_reports;
      const del = await server.api.delete(`${V1}/event_reports/${newest!.id}`, undefined, as(admin));
      assert.equal(del.status, 200);
      assert.deepEqual(del.body, {});
      assert.equal((await server.api.get(`${V1}/event_reports/${newest!.id}`, as(admin))).status, 404);
      const again = await server.api.delete(`${V1}/event_reports/${newest!.id}`, undefined, as(admin));
      assert.equal(again.status, 404);
      assert.equal(again.body.errcode, 'M_NOT_FOUND');
      assert.ok(!(await list('?limit=1000')).event_reports.some((r) => r.id === newest!.id));
      for (const id of ['abc', '0', '-3', '1.5']) {
        const res = await server.api.get(`${V1}/event_reports/${id}`, as(admin));
        assert.equal(res.status, 400, id);
        assert.equal(res.body.errcode, 'M_INVALID_PARAM');
      }
      // A new report never takes a deleted one's number.
      assert.equal((await reportEvent(alice, room, bobSaid[0]!)).status, 200);
      assert.ok((await list('?limit=1')).event_reports[0]!.id > newest!.id);
    });

    it('keeps the admin API to server admins: 403 M_FORBIDDEN for anyone else, 401 without a token', async () => {
      const [one] = (await list('?limit=1')).event_reports;
      for (const [method, path] of [
        ['GET', `${V1}/event_reports`],
        ['GET', `${V1}/event_reports/${one!.id}`],
        ['DELETE', `${V1}/event_reports/${one!.id}`],
      ] as const) {
        const res = await server.api.request(method, path, undefined, as(alice));
        assert.equal(res.status, 403, `${method} ${path}`);
        assert.equal(res.body.errcode, 'M_FORBIDDEN');
        assert.equal((await server.api.request(method, path)).status, 401);
      }
      assert.equal((await server.api.get(`${V1}/event_reports/${one!.id}`, as(admin))).status, 200, 'nothing was deleted');
    });

    it('keeps reports when an admin purges the room, as Synapse; the reported event is then gone from the details', async () => {
      const doomed = await actions.createRoom(alice, { preset: 'public_chat', name: 'Doomed' });
      const said = await actions.send(alice, doomed, 'soon gone');
      assert.equal((await reportEvent(alice, doomed, said, { reason: 'evidence' })).status, 200);
      const purge = await server.api.delete(`${V1}/rooms/${enc(doomed)}`, { purge: true }, as(admin));
      assert.equal(purge.status, 200, JSON.stringify(purge.body));
      const [kept] = (await list(`?room_id=${enc(doomed)}`)).event_reports;
      assert.equal(kept?.reason, 'evidence');
      assert.equal(kept?.sender, alice.user_id);
      const details = await server.api.get<Json>(`${V1}/event_reports/${kept!.id}`, as(admin));
      assert.equal(details.status, 200);
      assert.equal(details.body.event_json, null);
    });
  });

  describe(`reports are rate limited per user (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine, { rc_message: { per_second: 0.001, burst_count: 3 } });
    });
    after(async () => server.close());

    it('answers 429 M_LIMIT_EXCEEDED past the burst, and stores only what was accepted', async () => {
      const alice = await server.api.register('alice');
      const bob = await server.api.register('bob');
      const roomId = (await server.api.post<{ room_id: string }>('/v3/createRoom', { preset: 'public_chat' }, { token: alice.access_token })).body.room_id;
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await server.api.post(`/v3/rooms/${enc(roomId)}/report`, { reason: `r${i}` }, { token: bob.access_token })).status);
      assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
      const stored = await server.hs.services.store.db.kysely.selectFrom('room_reports').select('reason').orderBy('id').execute();
      assert.deepEqual(stored.map((r) => r.reason), ['r0', 'r1', 'r2']);
      assert.equal((await server.api.post(`/v3/rooms/${enc(roomId)}/report`, { reason: 'alice' }, { token: alice.access_token })).status, 200, 'another user has their own allowance');
    });
  });
}
