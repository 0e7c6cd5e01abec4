import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

type Session = { user_id: string; access_token: string; device_id: string };
type Event = {
  event_id: string;
  type: string;
  sender: string;
  origin_server_ts: number;
  state_key?: string;
  content: Record<string, unknown>;
  unsigned?: { 'm.relations'?: Relations; [key: string]: unknown };
};
type Relations = {
  'm.replace'?: Event;
  'm.thread'?: { latest_event: Event; count: number; current_user_participated: boolean };
  'm.reference'?: { chunk: { event_id: string }[] };
};
type RelationsPage = { chunk: Event[]; next_batch?: string; prev_batch?: string; recursion_depth?: number; errcode?: string };
type ThreadsPage = { chunk: Event[]; next_batch?: string; errcode?: string };

const enc = encodeURIComponent;

// Both engines: the relations are read with engine-specific SQL (a recursive CTE, row-value
// comparisons, grouped thread summaries with a correlated subquery).
for (const engine of ENGINES) {
  describe(`relations, threads and bundled aggregations over HTTP (${engine})`, () => {
    let server: TestServer;
    let alice: Session;
    let bob: Session;
    let carol: Session;
    let txn = 0;

    const room = (roomId: string) => `/v3/rooms/${enc(roomId)}`;
    const createRoom = async (who: Session, body: Record<string, unknown> = {}) => {
      const res = await server.api.post<{ room_id: string }>('/v3/createRoom', body, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.room_id;
    };
    const sendRaw = (who: Session, roomId: string, type: string, content: Record<string, unknown>) =>
      server.api.put<{ event_id: string; errcode?: string }>(`${room(roomId)}/send/${enc(type)}/t${++txn}`, content, { token: who.access_token });
    const send = async (who: Session, roomId: string, content: Record<string, unknown>, type = 'm.room.message') => {
      const res = await sendRaw(who, roomId, type, content);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.event_id;
    };
    const text = (who: Session, roomId: string, body: string, relatesTo?: Record<string, unknown>) =>
      send(who, roomId, { msgtype: 'm.text', body, ...(relatesTo ? { 'm.relates_to': relatesTo } : {}) });
    const edit = (who: Session, roomId: string, target: string, body: string) =>
      send(who, roomId, { msgtype: 'm.text', body: `* ${body}`, 'm.new_content': { msgtype: 'm.text', body }, 'm.relates_to': { rel_type: 'm.replace', event_id: target } });
    const inThread = (who: Session, roomId: string, root: string, body: string) => text(who, roomId, body, { rel_type: 'm.thread', event_id: root, is_falling_back: true, 'm.in_reply_to': { event_id: root } });
    const join = async (who: Session, roomId: string) => {
      const res = await server.api.post(`/v3/join/${enc(roomId)}`, {}, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const redact = async (who: Session, roomId: string, eventId: string) => {
      const res = await server.api.put(`${room(roomId)}/redact/${enc(eventId)}/r${++txn}`, {}, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const relations = (who: Session, roomId: string, path: string, query = '') =>
      server.api.get<RelationsPage>(`/v1/rooms/${enc(roomId)}/relations/${path}${query ? `?${query}` : ''}`, { token: who.access_token });
    const threads = (who: Session, roomId: string, query = '') => server.api.get<ThreadsPage>(`/v1/rooms/${enc(roomId)}/threads${query ? `?${query}` : ''}`, { token: who.access_token });
    const event = async (who: Session, roomId: string, eventId: string) => {
      const res = await server.api.get<Event>(`${room(roomId)}/event/${enc(eventId)}`, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    };
    const ids = (events: Event[]) => events.map((e) => e.event_id);
    /** The spec's "most recent" replacement: later origin_server_ts, then the larger event ID. */
    const latestOf = (events: Event[]) => [...events].sort((a, b) => a.origin_server_ts - b.origin_server_ts || (a.event_id < b.event_id ? -1 : 1)).at(-1)!;

    before(async () => {
      server = await startTestServer(engine, { rc_message: { per_second: 1000, burst_count: 1000 } });
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
      carol = await server.api.register('carol');
    });
    after(async () => server.close());

    it('lists a parent’s children newest first, by relation and event type, paged with tokens /messages and /sync also give', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await join(bob, roomId);
      const root = await text(alice, roomId, 'root');
      const r1 = await inThread(bob, roomId, root, 'r1');
      const ref1 = await send(alice, roomId, { 'm.relates_to': { rel_type: 'm.reference', event_id: root } }, 'org.example.note');
      const sync = await server.api.get<{ next_batch: string }>('/v3/sync?timeout=0', { token: alice.access_token });
      const r2 = await inThread(alice, roomId, root, 'r2');
      const e1 = await edit(alice, roomId, root, 'root, edited');
      const r3 = await inThread(bob, roomId, root, 'r3');
      await text(alice, roomId, 'unrelated');

      const all = await relations(alice, roomId, enc(root));
      assert.equal(all.status, 200, JSON.stringify(all.body));
      assert.deepEqual(ids(all.body.chunk), [r3, e1, r2, ref1, r1]);
      assert.equal(all.body.next_batch, undefined, 'all children fit the default page');
      assert.equal(all.body.prev_batch, undefined);
      assert.equal(all.body.recursion_depth, undefined, 'recursion_depth only when recurse was given');

      const thread = await relations(alice, roomId, `${enc(root)}/m.thread`);
      assert.deepEqual(ids(thread.body.chunk), [r3, r2, r1]);
      const typed = await relations(alice, roomId, `${enc(root)}/m.reference/org.example.note`);
      assert.deepEqual(ids(typed.body.chunk), [ref1]);
      const wrongType = await relations(alice, roomId, `${enc(root)}/m.reference/m.room.message`);
      assert.deepEqual(wrongType.body.chunk, []);

      // Pages of two, backwards then forwards, following next_batch.
      const seen: string[] = [];
      let from: string | undefined;
      for (let i = 0; i < 10; i++) {
        const page = await relations(alice, roomId, enc(root), `limit=2${from ? `&from=${enc(from)}` : ''}`);
        assert.ok(page.body.chunk.length <= 2);
        if (from) assert.equal(page.body.prev_batch, from);
        seen.push(...ids(page.body.chunk));
        if (!page.body.next_batch) break;
        from = page.body.next_batch;
      }
      assert.deepEqual(seen, [r3, e1, r2, ref1, r1]);
      const forwards = await relations(alice, roomId, enc(root), 'dir=f&limit=3');
      assert.deepEqual(ids(forwards.body.chunk), [r1, ref1, r2]);
      const rest = await relations(alice, roomId, enc(root), `dir=f&limit=3&from=${enc(forwards.body.next_batch!)}`);
      assert.deepEqual(ids(rest.body.chunk), [e1, r3]);

      // A sync next_batch as `from`: backwards gives the children before it, forwards those after.
      const before = await relations(alice, roomId, enc(root), `from=${enc(sync.body.next_batch)}`);
      assert.deepEqual(ids(before.body.chunk), [ref1, r1]);
      const afterSync = await relations(alice, roomId, enc(root), `dir=f&from=${enc(sync.body.next_batch)}`);
      assert.deepEqual(ids(afterSync.body.chunk), [r2, e1, r3]);
      // A /messages token as `to`: paging back from the end stops there.
      const messages = await server.api.get<{ chunk: Event[]; end: string }>(`${room(roomId)}/messages?dir=b&limit=3`, { token: alice.access_token });
      assert.deepEqual(messages.body.chunk.map((e) => e.content.body), ['unrelated', 'r3', '* root, edited']);
      const upTo = await relations(alice, roomId, enc(root), `to=${enc(messages.body.end)}`);
      assert.deepEqual(ids(upTo.body.chunk), [r3, e1]);
    });

    it('recurses through relations of relations when asked, with the filters applied at every level', async () => {
      const roomId = await createRoom(alice);
      const root = await text(alice, roomId, 'root');
      const reply = await inThread(alice, roomId, root, 'in thread');
      const replyEdit = await edit(alice, roomId, reply, 'in thread, edited');
      const note = await send(alice, roomId, { 'm.relates_to': { rel_type: 'm.reference', event_id: replyEdit } }, 'org.example.note');

      const direct = await relations(alice, roomId, enc(root), 'recurse=false');
      assert.deepEqual(ids(direct.body.chunk), [reply]);
      assert.equal(direct.body.recursion_depth, 1);
      const deep = await relations(alice, roomId, enc(root), 'recurse=true');
      assert.deepEqual(ids(deep.body.chunk), [note, replyEdit, reply]);
      assert.equal(deep.body.recursion_depth, 3);
      // Filtered to m.thread, the edit and the note (reached only through the edit) are left out.
      const threadOnly = await relations(alice, roomId, `${enc(root)}/m.thread`, 'recurse=true');
      assert.deepEqual(ids(threadOnly.body.chunk), [reply]);
      const paged = await relations(alice, roomId, enc(root), 'recurse=true&limit=2');
      assert.deepEqual(ids(paged.body.chunk), [note, replyEdit]);
      const next = await relations(alice, roomId, enc(root), `recurse=true&limit=2&from=${enc(paged.body.next_batch!)}`);
      assert.deepEqual(ids(next.body.chunk), [reply]);
    });

    it('bundles the latest valid edit without replacing the content, everywhere events are served', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await join(bob, roomId);
      const original = await text(alice, roomId, 'first words');
      const editA = await edit(alice, roomId, original, 'second words');
      const editB = await edit(alice, roomId, original, 'third words');
      // Invalid replacements, all ignored: another sender, another type, no m.new_content, an edit of an edit.
      await edit(bob, roomId, original, 'bob was here');
      await send(alice, roomId, { 'm.new_content': { body: 'x' }, 'm.relates_to': { rel_type: 'm.replace', event_id: original } }, 'org.example.other');
      await send(alice, roomId, { msgtype: 'm.text', body: '* no new content', 'm.relates_to': { rel_type: 'm.replace', event_id: original } });
      const editOfEdit = await edit(alice, roomId, editB, 'edit of an edit');

      const edits = await Promise.all([editA, editB].map((id) => event(alice, roomId, id)));
      const expected = latestOf(edits);
      const check = (served: Event | undefined, where: string) => {
        assert.ok(served, where);
        assert.equal(served.content.body, 'first words', `${where}: the original content stays`);
        const bundled = served.unsigned?.['m.relations']?.['m.replace'];
        assert.equal(bundled?.event_id, expected.event_id, `${where}: the latest valid edit is bundled`);
        assert.deepEqual(bundled?.content, expected.content, `${where}: the edit event itself, as served`);
        assert.equal(bundled?.sender, alice.user_id);
      };
      check(await event(bob, roomId, original), '/event');
      const messages = await server.api.get<{ chunk: Event[] }>(`${room(roomId)}/messages?dir=b&limit=20`, { token: bob.access_token });
      check(
        messages.body.chunk.find((e) => e.event_id === original),
        '/messages',
      );
      const context = await server.api.get<{ event: Event }>(`${room(roomId)}/context/${enc(original)}?limit=2`, { token: bob.access_token });
      check(context.body.event, '/context');
      // Sync bundles in limited timelines only (spec): the original and the six events after it, of more.
      type Sync = { rooms: { join: Record<string, { timeline: { events: Event[]; limited: boolean } }> } };
      const syncWith = (limit: number) => server.api.get<Sync>('/v3/sync?timeout=0&filter=' + enc(JSON.stringify({ room: { rooms: [roomId], timeline: { limit } } })), { token: bob.access_token });
      const limited = (await syncWith(7)).body.rooms.join[roomId]!.timeline;
      assert.equal(limited.limited, true);
      assert.equal(limited.events[0]!.event_id, original);
      check(limited.events[0], '/sync');
      const whole = (await syncWith(100)).body.rooms.join[roomId]!.timeline;
      assert.equal(whole.limited, false);
      const unbundled = whole.events.find((e) => e.event_id === original)!;
      assert.equal(unbundled.unsigned?.['m.relations'], undefined, 'an unlimited timeline has the children already');
      const listed = await relations(bob, roomId, enc(editB));
      assert.deepEqual(ids(listed.body.chunk), [editOfEdit]);
      // An edit is not itself edited: the edit of editB is not bundled with it.
      assert.equal((await event(bob, roomId, editB)).unsigned?.['m.relations'], undefined);

      // Redacting the latest edit falls back to the one before; redacting the original drops the bundle.
      await redact(alice, roomId, expected.event_id);
      const fallback = (await event(bob, roomId, original)).unsigned?.['m.relations']?.['m.replace'];
      assert.equal(fallback?.event_id, expected.event_id === editA ? editB : editA);
      await redact(alice, roomId, original);
      const redacted = await event(bob, roomId, original);
      assert.deepEqual(redacted.content, {});
      assert.equal(redacted.unsigned?.['m.relations']?.['m.replace'], undefined);
    });

    it('bundles thread summaries (latest event with its own edit, count, participation) and references; redactions de-aggregate', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await join(bob, roomId);
      await join(carol, roomId);
      const root = await text(alice, roomId, 'thread root');
      const one = await inThread(bob, roomId, root, 'one');
      const two = await inThread(bob, roomId, root, 'two');
      const twoEdit = await edit(bob, roomId, two, 'two, edited');
      const ref = await send(carol, roomId, { 'm.relates_to': { rel_type: 'm.reference', event_id: root } }, 'org.example.note');

      const forBob = (await event(bob, roomId, root)).unsigned?.['m.relations'];
      assert.equal(forBob?.['m.thread']?.count, 2);
      assert.equal(forBob?.['m.thread']?.current_user_participated, true, 'bob replied');
      assert.equal(forBob?.['m.thread']?.latest_event.event_id, two);
      assert.equal(forBob?.['m.thread']?.latest_event.content.body, 'two', 'the latest event as sent');
      assert.equal(forBob?.['m.thread']?.latest_event.unsigned?.['m.relations']?.['m.replace']?.event_id, twoEdit, 'with its own bundle');
      assert.deepEqual(forBob?.['m.reference'], { chunk: [{ event_id: ref }] });
      assert.equal((await event(alice, roomId, root)).unsigned?.['m.relations']?.['m.thread']?.current_user_participated, true, 'alice sent the root');
      assert.equal((await event(carol, roomId, root)).unsigned?.['m.relations']?.['m.thread']?.current_user_participated, false, 'carol only referenced it');

      // Starting a thread from an event that has a relation is refused (spec: 400, M_UNKNOWN).
      const nested = await sendRaw(alice, roomId, 'm.room.message', { msgtype: 'm.text', body: 'nested', 'm.relates_to': { rel_type: 'm.thread', event_id: two } });
      assert.equal(nested.status, 400);
      assert.equal(nested.body.errcode, 'M_UNKNOWN');

      await redact(bob, roomId, two);
      await redact(carol, roomId, ref);
      const after = (await event(alice, roomId, root)).unsigned?.['m.relations'];
      assert.equal(after?.['m.thread']?.count, 1);
      assert.equal(after?.['m.thread']?.latest_event.content.body, 'one');
      // A redaction event sent through /send redacts nothing, so the relation stays.
      await send(alice, roomId, { redacts: one }, 'm.room.redaction');
      assert.equal((await event(alice, roomId, root)).unsigned?.['m.relations']?.['m.thread']?.count, 1);
      assert.equal((await event(alice, roomId, one)).content.body, 'one');
      assert.equal(after?.['m.reference'], undefined);
      const listed = await relations(alice, roomId, `${enc(root)}/m.thread`);
      assert.deepEqual(
        listed.body.chunk.map((e) => e.content.body),
        ['one'],
      );

      // The relations endpoint's own events carry bundles too.
      const second = await text(alice, roomId, 'another');
      const secondEdit = await edit(alice, roomId, second, 'another, edited');
      const reference = await send(alice, roomId, { 'm.relates_to': { rel_type: 'm.reference', event_id: second } }, 'org.example.note');
      await send(alice, roomId, { 'm.relates_to': { rel_type: 'm.reference', event_id: reference } }, 'org.example.note');
      const page = await relations(alice, roomId, enc(second));
      assert.deepEqual(ids(page.body.chunk).slice(1), [secondEdit]);
      assert.equal(page.body.chunk[0]!.unsigned?.['m.relations']?.['m.reference']?.chunk.length, 1);
    });

    it('refuses a duplicate annotation until the first is redacted, and bundles no annotations', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await join(bob, roomId);
      const target = await text(alice, roomId, 'react to me');
      const like = { 'm.relates_to': { rel_type: 'm.annotation', event_id: target, key: '👍' } };
      const first = await send(alice, roomId, like, 'm.reaction');
      const again = await sendRaw(alice, roomId, 'm.reaction', like);
      assert.equal(again.status, 400);
      assert.equal(again.body.errcode, 'M_DUPLICATE_ANNOTATION');
      // Another key, another sender, another event type: all fine.
      await send(alice, roomId, { 'm.relates_to': { rel_type: 'm.annotation', event_id: target, key: '🎉' } }, 'm.reaction');
      await send(bob, roomId, like, 'm.reaction');
      await send(alice, roomId, like, 'org.example.vote');
      await redact(alice, roomId, first);
      await send(alice, roomId, like, 'm.reaction');
      const served = await event(bob, roomId, target);
      assert.equal(served.unsigned?.['m.relations'], undefined);
      const listed = await relations(bob, roomId, `${enc(target)}/m.annotation/m.reaction`, 'limit=10');
      assert.equal(listed.body.chunk.length, 3);
    });

    it('leaves out the children and threads of ignored users', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await join(bob, roomId);
      await join(carol, roomId);
      const root = await text(alice, roomId, 'root');
      const fromCarol = await inThread(carol, roomId, root, 'carol says');
      await inThread(bob, roomId, root, 'bob says');
      const ignore = await server.api.put(`/v3/user/${enc(alice.user_id)}/account_data/m.ignored_user_list`, { ignored_users: { [bob.user_id]: {} } }, { token: alice.access_token });
      assert.equal(ignore.status, 200);
      const thread = (await event(alice, roomId, root)).unsigned?.['m.relations']?.['m.thread'];
      assert.equal(thread?.count, 1);
      assert.equal(thread?.latest_event.event_id, fromCarol);
      assert.equal((await event(carol, roomId, root)).unsigned?.['m.relations']?.['m.thread']?.count, 2, 'others still count bob');
      const unignore = await server.api.put(`/v3/user/${enc(alice.user_id)}/account_data/m.ignored_user_list`, { ignored_users: {} }, { token: alice.access_token });
      assert.equal(unignore.status, 200);
      assert.equal((await event(alice, roomId, root)).unsigned?.['m.relations']?.['m.thread']?.count, 2);
    });

    it('lists threads by latest activity, all or participated, in pages', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await join(bob, roomId);
      const t1 = await text(alice, roomId, 't1');
      const t2 = await text(bob, roomId, 't2');
      const t3 = await text(bob, roomId, 't3');
      await text(alice, roomId, 'not a thread');
      await inThread(alice, roomId, t1, 'a');
      await inThread(bob, roomId, t2, 'b');
      await inThread(bob, roomId, t3, 'c');
      await inThread(bob, roomId, t1, 'd');

      const all = await threads(alice, roomId);
      assert.equal(all.status, 200, JSON.stringify(all.body));
      assert.deepEqual(ids(all.body.chunk), [t1, t3, t2]);
      assert.equal(all.body.chunk[0]!.unsigned?.['m.relations']?.['m.thread']?.count, 2, 'roots come with their bundles');
      const mine = await threads(alice, roomId, 'include=participated');
      assert.deepEqual(ids(mine.body.chunk), [t1]);
      const bobs = await threads(bob, roomId, 'include=participated');
      assert.deepEqual(ids(bobs.body.chunk), [t1, t3, t2]);

      const first = await threads(alice, roomId, 'limit=2');
      assert.deepEqual(ids(first.body.chunk), [t1, t3]);
      assert.ok(first.body.next_batch);
      const second = await threads(alice, roomId, `limit=2&from=${enc(first.body.next_batch)}`);
      assert.deepEqual(ids(second.body.chunk), [t2]);
      assert.equal(second.body.next_batch, undefined);
    });

    it('applies history visibility and membership', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }] });
      const early = await text(alice, roomId, 'before bob');
      await inThread(alice, roomId, early, 'early reply');
      await join(bob, roomId);
      const root = await text(alice, roomId, 'root');
      const seen = await inThread(alice, roomId, root, 'bob sees this');
      const leave = await server.api.post(`${room(roomId)}/leave`, {}, { token: bob.access_token });
      assert.equal(leave.status, 200);
      const unseen = await inThread(alice, roomId, root, 'after bob left');

      const beforeJoin = await relations(bob, roomId, enc(early));
      assert.equal(beforeJoin.status, 404);
      assert.equal(beforeJoin.body.errcode, 'M_NOT_FOUND');
      const listed = await relations(bob, roomId, enc(root));
      assert.equal(listed.status, 200);
      assert.deepEqual(ids(listed.body.chunk), [seen]);
      assert.ok(!JSON.stringify((await event(bob, roomId, root)).unsigned ?? {}).includes(unseen), 'no bundle shows what came after the leave');
      const bobThreads = await threads(bob, roomId);
      assert.deepEqual(ids(bobThreads.body.chunk), [root]);
      const aliceThreads = await threads(alice, roomId);
      assert.deepEqual(ids(aliceThreads.body.chunk), [root, early]);

      const stranger = await relations(carol, roomId, enc(root));
      assert.equal(stranger.status, 404);
      assert.equal(stranger.body.errcode, 'M_NOT_FOUND');
      const strangerThreads = await threads(carol, roomId);
      assert.equal(strangerThreads.status, 403);
      assert.equal(strangerThreads.body.errcode, 'M_FORBIDDEN');
    });

    it('answers bad input with the spec’s errors', async () => {
      const roomId = await createRoom(alice);
      const root = await text(alice, roomId, 'root');
      for (const query of ['dir=x', 'limit=abc', 'limit=-1', 'recurse=maybe', 'from=nonsense', 'to=nonsense']) {
        const res = await relations(alice, roomId, enc(root), query);
        assert.equal(res.status, 400, query);
        assert.equal(res.body.errcode, 'M_INVALID_PARAM', query);
      }
      const unknown = await relations(alice, roomId, enc('$nope'));
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.errcode, 'M_NOT_FOUND');
      const otherRoom = await createRoom(alice);
      const elsewhere = await relations(alice, otherRoom, enc(root));
      assert.equal(elsewhere.status, 404);
      const badRoom = await server.api.get<{ errcode: string }>(`/v1/rooms/not-a-room/relations/${enc(root)}`, { token: alice.access_token });
      assert.equal(badRoom.status, 400);
      for (const query of ['limit=0', 'limit=x', 'include=some', 'from=nonsense']) {
        const res = await threads(alice, roomId, query);
        assert.equal(res.status, 400, query);
        assert.equal(res.body.errcode, 'M_INVALID_PARAM', query);
      }
      const anonymous = await server.api.get<{ errcode: string }>(`/v1/rooms/${enc(roomId)}/threads`);
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.body.errcode, 'M_MISSING_TOKEN');
    });
  });
}
