import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

type Session = { user_id: string; access_token: string; device_id: string };
type Event = { event_id: string; type: string; sender: string; room_id: string; state_key?: string; content: Record<string, unknown> };
type Group = { results: string[]; order: number; next_batch?: string };
type Context = { events_before: Event[]; events_after: Event[]; start: string; end: string; profile_info?: Record<string, { displayname?: string; avatar_url?: string }> };
type RoomEvents = {
  results: { rank: number; result: Event; context?: Context }[];
  count: number;
  highlights: string[];
  next_batch?: string;
  groups?: Record<string, Record<string, Group>>;
  state?: Record<string, Event[]>;
};
type SearchAnswer = { search_categories: { room_events?: RoomEvents }; errcode?: string; error?: string };

const enc = encodeURIComponent;

// Both engines: the index and its queries are engine-specific (FTS5 on SQLite, tsvector and
// websearch_to_tsquery on PostgreSQL), as are the ways a user's query text could break them.
for (const engine of ENGINES) {
  describe(`POST /search (${engine})`, () => {
    let server: TestServer;
    let alice: Session;
    let bob: Session;
    let carol: Session;
    let txn = 0;

    const room = (roomId: string) => `/v3/rooms/${enc(roomId)}`;
    const createRoom = async (who: Session, body: Record<string, unknown> = { preset: 'public_chat' }) => {
      const res = await server.api.post<{ room_id: string }>('/v3/createRoom', body, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.room_id;
    };
    const send = async (who: Session, roomId: string, body: string, type = 'm.room.message', content?: Record<string, unknown>) => {
      const res = await server.api.put<{ event_id: string }>(`${room(roomId)}/send/${enc(type)}/t${++txn}`, content ?? { msgtype: 'm.text', body }, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.event_id;
    };
    const setState = async (who: Session, roomId: string, type: string, content: Record<string, unknown>) => {
      const res = await server.api.put<{ event_id: string }>(`${room(roomId)}/state/${enc(type)}/`, content, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.event_id;
    };
    const join = async (who: Session, roomId: string) => {
      const res = await server.api.post(`/v3/join/${enc(roomId)}`, {}, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const leave = async (who: Session, roomId: string) => {
      const res = await server.api.post(`${room(roomId)}/leave`, {}, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const searchRaw = (who: Session, criteria: Record<string, unknown>, nextBatch?: string) =>
      server.api.post<SearchAnswer>(`/v3/search${nextBatch !== undefined ? `?next_batch=${enc(nextBatch)}` : ''}`, { search_categories: { room_events: criteria } }, { token: who.access_token });
    const search = async (who: Session, criteria: Record<string, unknown>, nextBatch?: string): Promise<RoomEvents> => {
      const res = await searchRaw(who, criteria, nextBatch);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.search_categories.room_events!;
    };
    const ids = (answer: RoomEvents) => answer.results.map((r) => r.result.event_id);
    /** Every page of a search, following next_batch to its end. */
    const allPages = async (who: Session, criteria: Record<string, unknown>) => {
      const pages: RoomEvents[] = [];
      let next: string | undefined;
      do {
        const page = await search(who, criteria, next);
        pages.push(page);
        next = page.next_batch;
        assert.ok(pages.length < 20, 'pagination ends');
      } while (next !== undefined);
      return pages;
    };

    before(async () => {
      server = await startTestServer(engine, { rc_message: { per_second: 1000, burst_count: 1000 } });
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
      carol = await server.api.register('carol');
    });
    after(async () => server.close());

    it('finds a message by a word of it as soon as the send has answered, with stemming, and only in the keys asked', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat', name: 'Quokka lounge', topic: 'Where wombats gather' });
      const eventId = await send(alice, roomId, 'The Martians were running towards the quokka');
      const byWord = await search(alice, { search_term: 'martians' });
      assert.deepEqual(ids(byWord), [eventId]);
      assert.equal(byWord.count, 1);
      assert.equal(byWord.results[0]!.result.content.body, 'The Martians were running towards the quokka');
      assert.equal(typeof byWord.results[0]!.rank, 'number');
      assert.equal(byWord.next_batch, undefined);
      // Stemmed on both engines: "run" finds "running", and the highlight is the word as written.
      const stemmed = await search(alice, { search_term: 'run' });
      assert.deepEqual(ids(stemmed), [eventId]);
      assert.deepEqual(stemmed.highlights, ['running']);
      // All three keys by default: the room's name and topic events are found too.
      const everywhere = await search(alice, { search_term: 'quokka' });
      assert.equal(everywhere.results.length, 2);
      assert.deepEqual(new Set(everywhere.results.map((r) => r.result.type)), new Set(['m.room.message', 'm.room.name']));
      assert.deepEqual(ids(await search(alice, { search_term: 'quokka', keys: ['content.body'] })), [eventId]);
      const names = await search(alice, { search_term: 'quokka', keys: ['content.name'] });
      assert.deepEqual(names.results.map((r) => r.result.type), ['m.room.name']);
      const topics = await search(alice, { search_term: 'wombats', keys: ['content.topic'] });
      assert.deepEqual(topics.results.map((r) => r.result.type), ['m.room.topic']);
      assert.deepEqual(ids(await search(alice, { search_term: 'wombats', keys: ['content.body'] })), []);
      // Words are ANDed; a quoted phrase must appear as such; a leading - excludes.
      assert.deepEqual(ids(await search(alice, { search_term: 'martians quokka', keys: ['content.body'] })), [eventId]);
      assert.deepEqual(ids(await search(alice, { search_term: 'martians zeppelin', keys: ['content.body'] })), []);
      assert.deepEqual(ids(await search(alice, { search_term: '"running towards"' })), [eventId]);
      assert.deepEqual(ids(await search(alice, { search_term: '"towards running"' })), []);
      assert.deepEqual(ids(await search(alice, { search_term: 'martians -quokka' })), []);
      assert.deepEqual(ids(await search(alice, { search_term: 'zeppelin or martians' })), [eventId]);
    });

    it('searches only what the user may read: not before a history=joined join, not after a leave, nothing in a room never joined', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }] });
      const early = await send(alice, roomId, 'pineapple before bob');
      await join(bob, roomId);
      const during = await send(alice, roomId, 'pineapple while bob is here');
      const forAlice = await search(alice, { search_term: 'pineapple' });
      assert.deepEqual(new Set(ids(forAlice)), new Set([early, during]));
      assert.equal(forAlice.count, 2);
      const forBob = await search(bob, { search_term: 'pineapple' });
      assert.deepEqual(ids(forBob), [during]);
      assert.equal(forBob.count, 1, 'the count leaves out what bob may not read');
      // Carol never joined this public room: nothing of it, though it is joinable.
      const forCarol = await search(carol, { search_term: 'pineapple' });
      assert.deepEqual(forCarol.results, []);
      assert.equal(forCarol.count, 0);
      assert.deepEqual(ids(await search(carol, { search_term: 'pineapple', filter: { rooms: [roomId] } })), []);
      // Bob leaves: what he could read stays searchable, what comes after is not.
      await leave(bob, roomId);
      const later = await send(alice, roomId, 'pineapple after bob left');
      assert.deepEqual(ids(await search(bob, { search_term: 'pineapple' })), [during]);
      assert.deepEqual(new Set(ids(await search(alice, { search_term: 'pineapple' }))), new Set([early, during, later]));
      // A shared room read by a later joiner: the history before the join is readable.
      const shared = await createRoom(alice, { preset: 'public_chat' });
      const old = await send(alice, shared, 'guava from the past');
      await join(carol, shared);
      assert.deepEqual(ids(await search(carol, { search_term: 'guava' })), [old]);
    });

    it('orders by rank (the default) or by recent, each in its own order', async () => {
      const roomId = await createRoom(alice);
      const dense = await send(alice, roomId, 'banana banana banana');
      const sparse = await send(alice, roomId, 'one sentence about many other things, with a single banana lost among a great many other words');
      const middle = await send(alice, roomId, 'banana split with cream');
      const recent = await search(alice, { search_term: 'banana', order_by: 'recent' });
      assert.deepEqual(ids(recent), [middle, sparse, dense]);
      const ranked = await search(alice, { search_term: 'banana' });
      assert.equal(ids(ranked)[0], dense);
      assert.equal(ids(ranked).at(-1), sparse);
      const ranks = ranked.results.map((r) => r.rank);
      assert.deepEqual(ranks, [...ranks].sort((a, b) => b - a), 'ranks never increase down the list');
      assert.ok(ranks[0]! > ranks.at(-1)!);
      assert.deepEqual(ids(await search(alice, { search_term: 'banana', order_by: 'rank' })), ids(ranked));
    });

    it('pages with next_batch through every result once, in both orders, the room group narrowing to its room', async () => {
      const roomA = await createRoom(alice);
      const roomB = await createRoom(alice);
      const sent = new Set<string>();
      for (let i = 0; i < 25; i++) sent.add(await send(alice, i % 3 === 0 ? roomB : roomA, `zebra number ${i}`));
      for (const order of ['recent', 'rank']) {
        const pages = await allPages(alice, { search_term: 'zebra', order_by: order });
        assert.deepEqual(pages.map((p) => p.results.length), [10, 10, 5], order);
        const seen = pages.flatMap(ids);
        assert.equal(new Set(seen).size, seen.length, `${order}: no result twice`);
        assert.deepEqual(new Set(seen), sent, `${order}: every result`);
        assert.ok(pages.every((p) => p.count === 25));
      }
      const small = await allPages(alice, { search_term: 'zebra', order_by: 'recent', filter: { limit: 4 } });
      assert.equal(small.length, 7);
      assert.deepEqual(new Set(small.flatMap(ids)), sent);
      // A room group's next_batch goes on within that room only, through the rest of its results.
      const sentInB = [...sent].filter((_, i) => i % 3 === 0);
      for (const order of ['recent', 'rank']) {
        const criteria = { search_term: 'zebra', order_by: order, groupings: { group_by: [{ key: 'room_id' }] } };
        const first = await search(alice, criteria);
        const seenInB = first.results.filter((r) => r.result.room_id === roomB).map((r) => r.result.event_id);
        let next = first.groups!.room_id![roomB]!.next_batch;
        assert.ok(next, order);
        while (next !== undefined) {
          const more = await search(alice, criteria, next);
          assert.ok(more.results.every((r) => r.result.room_id === roomB), order);
          assert.deepEqual(Object.keys(more.groups?.room_id ?? {}).filter((id) => id !== roomB), []);
          seenInB.push(...ids(more));
          next = more.next_batch;
          assert.ok(seenInB.length <= 25, 'pagination ends');
        }
        assert.equal(new Set(seenInB).size, seenInB.length, `${order}: no result of the room twice`);
        assert.deepEqual(new Set(seenInB), new Set(sentInB), `${order}: every result of the room`);
      }
    });

    it('returns the context of each result, with profiles, and tokens that /messages continues from', async () => {
      const roomId = await createRoom(alice);
      await join(bob, roomId);
      const profile = await server.api.put(`${room(roomId)}/state/m.room.member/${enc(bob.user_id)}`, { membership: 'join', displayname: 'Bobby' }, { token: bob.access_token });
      assert.equal(profile.status, 200);
      const b1 = await send(alice, roomId, 'context one');
      const b2 = await send(bob, roomId, 'context two');
      const hit = await send(alice, roomId, 'the kumquat itself');
      const a1 = await send(bob, roomId, 'context three');
      const a2 = await send(alice, roomId, 'context four');
      const answer = await search(alice, { search_term: 'kumquat', event_context: { before_limit: 2, after_limit: 1, include_profile: true } });
      assert.deepEqual(ids(answer), [hit]);
      const context = answer.results[0]!.context!;
      assert.deepEqual(context.events_before.map((e) => e.event_id), [b2, b1]);
      assert.deepEqual(context.events_after.map((e) => e.event_id), [a1]);
      assert.equal(context.profile_info![bob.user_id]!.displayname, 'Bobby');
      assert.ok(context.profile_info![alice.user_id]);
      const onwards = await server.api.get<{ chunk: Event[] }>(`${room(roomId)}/messages?dir=f&limit=1&from=${enc(context.end)}`, { token: alice.access_token });
      assert.equal(onwards.status, 200);
      assert.deepEqual(onwards.body.chunk.map((e) => e.event_id), [a2]);
      const backwards = await server.api.get<{ chunk: Event[] }>(`${room(roomId)}/messages?dir=b&limit=50&from=${enc(context.start)}`, { token: alice.access_token });
      assert.ok(!backwards.body.chunk.some((e) => [b1, b2, hit].includes(e.event_id)));
      // Defaults: five each way, no profiles; no context unless asked.
      const defaults = await search(alice, { search_term: 'kumquat', event_context: {} });
      assert.equal(defaults.results[0]!.context!.events_after.length, 2);
      assert.equal(defaults.results[0]!.context!.events_before.length, 5);
      assert.equal(defaults.results[0]!.context!.profile_info, undefined);
      assert.equal((await search(alice, { search_term: 'kumquat' })).results[0]!.context, undefined);
    });

    it('highlights the matched words, groups by room and sender, and includes the rooms\u2019 state when asked', async () => {
      const roomA = await createRoom(alice, { preset: 'public_chat', name: 'Room A' });
      const roomB = await createRoom(bob, { preset: 'public_chat' });
      await join(alice, roomB);
      const inA = await send(alice, roomA, 'Dolphins are swimming');
      const inB = await send(bob, roomB, 'one dolphin swam');
      const answer = await search(alice, {
        search_term: 'dolphin',
        order_by: 'recent',
        include_state: true,
        groupings: { group_by: [{ key: 'room_id' }, { key: 'sender' }] },
      });
      assert.deepEqual(ids(answer), [inB, inA]);
      assert.deepEqual(new Set(answer.highlights), new Set(['dolphins', 'dolphin']));
      assert.deepEqual(answer.groups!.room_id![roomA]!.results, [inA]);
      assert.deepEqual(answer.groups!.room_id![roomB]!.results, [inB]);
      assert.deepEqual(answer.groups!.sender![alice.user_id]!.results, [inA]);
      assert.deepEqual(answer.groups!.sender![bob.user_id]!.results, [inB]);
      assert.ok(answer.groups!.room_id![roomB]!.order < answer.groups!.room_id![roomA]!.order);
      assert.deepEqual(Object.keys(answer.state!).sort(), [roomA, roomB].sort());
      assert.ok(answer.state![roomA]!.some((e) => e.type === 'm.room.name' && e.content.name === 'Room A'));
      assert.ok(answer.state![roomB]!.some((e) => e.type === 'm.room.member' && e.state_key === alice.user_id));
      assert.equal((await search(alice, { search_term: 'dolphin' })).state, undefined);
    });

    it('applies the filter: rooms, not_rooms, senders, types and limit', async () => {
      const roomA = await createRoom(alice);
      const roomB = await createRoom(alice);
      await join(bob, roomA);
      const fromAlice = await send(alice, roomA, 'papaya one');
      const fromBob = await send(bob, roomA, 'papaya two');
      const inB = await send(alice, roomB, 'papaya three');
      const notice = await send(alice, roomB, '', 'm.room.message', { msgtype: 'm.notice', body: 'papaya notice' });
      const found = async (filter: Record<string, unknown>) => new Set(ids(await search(alice, { search_term: 'papaya', order_by: 'recent', filter })));
      assert.deepEqual(await found({ rooms: [roomA] }), new Set([fromAlice, fromBob]));
      assert.deepEqual(await found({ not_rooms: [roomA] }), new Set([inB, notice]));
      assert.deepEqual(await found({ senders: [bob.user_id] }), new Set([fromBob]));
      assert.deepEqual(await found({ not_senders: [bob.user_id], rooms: [roomA] }), new Set([fromAlice]));
      assert.deepEqual(await found({ types: ['m.room.name'] }), new Set());
      const limited = await search(alice, { search_term: 'papaya', order_by: 'recent', filter: { limit: 1 } });
      assert.deepEqual(ids(limited), [notice]);
      assert.ok(limited.next_batch);
    });

    it('drops a redacted event from the results, and never indexes encrypted or other events', async () => {
      const roomId = await createRoom(alice);
      const kept = await send(alice, roomId, 'mango stays');
      const gone = await send(alice, roomId, 'mango goes');
      assert.equal((await search(alice, { search_term: 'mango' })).count, 2);
      const res = await server.api.put(`${room(roomId)}/redact/${enc(gone)}/r${++txn}`, { reason: 'oops' }, { token: alice.access_token });
      assert.equal(res.status, 200);
      const after = await search(alice, { search_term: 'mango' });
      assert.deepEqual(ids(after), [kept]);
      assert.equal(after.count, 1);
      // Ciphertext and custom events carry no body to index.
      await send(alice, roomId, '', 'm.room.encrypted', { algorithm: 'm.megolm.v1.aes-sha2', ciphertext: 'mango', sender_key: 'k', session_id: 's', device_id: 'D' });
      await send(alice, roomId, '', 'org.example.custom', { body: 'mango custom' });
      await setState(alice, roomId, 'org.example.state', { body: 'mango state' });
      assert.deepEqual(ids(await search(alice, { search_term: 'mango' })), [kept]);
    });

    it('answers 200 to any query text, however hostile to FTS5 or tsquery syntax', async () => {
      const roomId = await createRoom(alice);
      const target = await send(alice, roomId, 'apricot jam "quoted" (with) * star AND NOT OR NEAR body: value');
      const hostile = [
        '"',
        '""',
        '"""',
        '"apricot',
        'apricot"',
        '*',
        'apricot*',
        '* apricot',
        '(',
        ')',
        '(apricot',
        'apricot)',
        '()',
        'NEAR',
        'NEAR(apricot jam)',
        'NEAR(apricot jam, 2)',
        'apricot NEAR/2 jam',
        'AND',
        'OR',
        'NOT',
        'apricot AND',
        'AND apricot',
        'NOT apricot',
        'apricot NOT',
        'apricot OR OR jam',
        'or',
        '-',
        '--',
        '-apricot',
        '- -apricot',
        'body:apricot',
        'value:apricot',
        'event_search_fts:apricot',
        '{value}: apricot',
        '^apricot',
        'apricot ^jam',
        '+apricot',
        "apricot'; DROP TABLE events; --",
        "'",
        "''",
        '\\',
        '\\"',
        '!apricot',
        'apricot & jam | !x',
        'apricot <-> jam',
        'apricot:*',
        'a:b:c',
        '$1',
        '?',
        '%',
        '_',
        '__',
        '\u0001apricot\u0002',
        '\u00e9t\u00e9 \u4e2d\u6587 \ud83d\ude00',
        '\ud83d\ude00',
        ' ',
        '',
        '\t\n',
        'a'.repeat(4096),
        Array.from({ length: 300 }, (_, i) => `w${i}`).join(' OR '),
        Array.from({ length: 300 }, () => '(').join(''),
      ];
      for (const term of hostile) {
        for (const order of ['rank', 'recent']) {
          const res = await searchRaw(alice, { search_term: term, order_by: order, event_context: { before_limit: 1, after_limit: 1 } });
          assert.equal(res.status, 200, `${JSON.stringify(term)} (${order}): ${JSON.stringify(res.body)}`);
        }
      }
      // The words in hostile text are still found as words.
      for (const term of ['apricot*', '(apricot', 'NEAR(apricot jam)', 'body:apricot', '"apricot', 'apricot)']) {
        assert.deepEqual(ids(await search(alice, { search_term: term })), [target], term);
      }
      const tooLong = await searchRaw(alice, { search_term: 'a'.repeat(4097) });
      assert.equal(tooLong.status, 400);
    });

    it('refuses bad input with the spec\u2019s errors and no 500', async () => {
      const bad = async (body: unknown, errcode: string, nextBatch?: string) => {
        const res = await server.api.post<SearchAnswer>(`/v3/search${nextBatch !== undefined ? `?next_batch=${enc(nextBatch)}` : ''}`, body, { token: alice.access_token });
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal(res.body.errcode, errcode, JSON.stringify(res.body));
      };
      const criteria = (extra: Record<string, unknown>) => ({ search_categories: { room_events: { search_term: 'x', ...extra } } });
      await bad(criteria({ keys: ['content.unknown'] }), 'M_INVALID_PARAM');
      await bad(criteria({ keys: 'content.body' }), 'M_BAD_JSON');
      await bad(criteria({ order_by: 'oldest' }), 'M_INVALID_PARAM');
      await bad(criteria({ groupings: { group_by: [{ key: 'type' }] } }), 'M_INVALID_PARAM');
      await bad(criteria({ event_context: { before_limit: -1 } }), 'M_INVALID_PARAM');
      await bad(criteria({ event_context: { after_limit: 'many' } }), 'M_BAD_JSON');
      await bad(criteria({ filter: { rooms: 'not a list' } }), 'M_BAD_JSON');
      await bad(criteria({ filter: 'nope' }), 'M_BAD_JSON');
      await bad(criteria({ search_term: 7 }), 'M_BAD_JSON');
      await bad({ search_categories: { room_events: {} } }, 'M_BAD_JSON');
      await bad({}, 'M_MISSING_PARAM');
      await bad({ search_categories: [] }, 'M_BAD_JSON');
      for (const token of ['garbage', '!!!', Buffer.from('rank\n-1\n').toString('base64url'), Buffer.from('rank\n1\n@user').toString('base64url'), 'x'.repeat(500)]) {
        await bad(criteria({}), 'M_INVALID_PARAM', token);
      }
      // A next_batch of one order is no token for the other.
      const roomId = await createRoom(alice);
      for (let i = 0; i < 3; i++) await send(alice, roomId, `lychee ${i}`);
      const page = await search(alice, { search_term: 'lychee', order_by: 'recent', filter: { limit: 1 } });
      assert.ok(page.next_batch);
      await bad(criteria({ search_term: 'lychee', order_by: 'rank' }), 'M_INVALID_PARAM', page.next_batch);
      // No room_events category: nothing to search, nothing found.
      const none = await server.api.post<SearchAnswer>('/v3/search', { search_categories: {} }, { token: alice.access_token });
      assert.equal(none.status, 200);
      assert.deepEqual(none.body, { search_categories: {} });
      const anonymous = await server.api.post('/v3/search', criteria({}));
      assert.equal(anonymous.status, 401);
      // Synapse's enable_search: false refuses every search.
      const off = await startTestServer(engine, { enable_search: false });
      try {
        const who = await off.api.register('dora');
        const refused = await off.api.post<SearchAnswer>('/v3/search', criteria({}), { token: who.access_token });
        assert.equal(refused.status, 400);
        assert.equal(refused.body.errcode, 'M_UNKNOWN');
      } finally {
        await off.close();
      }
    });
  });
}
