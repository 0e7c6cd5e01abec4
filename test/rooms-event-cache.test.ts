import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EventCache } from '../src/storage/event-cache.js';
import type { EventRow } from '../src/storage/events.js';
import { ENGINES, startTestServer, twoProcessesOnePostgres, type TestServer } from './helpers/server.js';

type Event = { event_id: string; type: string; content: Record<string, unknown>; unsigned?: { redacted_because?: { event_id: string } } };

const enc = encodeURIComponent;

function row(eventId: string, body: string): EventRow {
  return {
    event_id: eventId,
    room_id: '!r:x',
    stream_pos: 1,
    depth: 1,
    type: 'm.room.message',
    state_key: null,
    sender: '@a:x',
    origin_server_ts: 1,
    pdu: JSON.stringify({ type: 'm.room.message', content: { body, nested: { list: [1, 2] } } }),
    state_group: 0,
    replaces_state: null,
    membership: null,
    history_visibility: 'shared',
    redacted_by: null,
    outlier: 0,
    soft_failed: 0,
    rejection_reason: null,
    sender_erased: 0,
  };
}

describe('event cache', () => {
  it('keeps the unchanging columns only, evicts the least recently used past its budget, and shares frozen parsed PDUs', () => {
    const a = row('$a', 'x'.repeat(100));
    // Room for three rows (1.7 bytes a character), not four; parsing one adds 1.5 a character.
    const cache = new EventCache(Math.floor(3.5 * 1.7 * a.pdu.length));
    cache.put({ ...a, redacted_by: '$r' } as EventRow);
    assert.equal((cache.fixed('$a') as Partial<EventRow>).redacted_by, undefined, 'redacted_by is never cached');
    cache.put(row('$b', 'y'.repeat(100)));
    cache.put(row('$c', 'z'.repeat(100)));
    assert.ok(cache.fixed('$a'), '$a used last: $b is now the oldest');
    cache.put(row('$d', 'w'.repeat(100)));
    assert.equal(cache.fixed('$b'), undefined, 'the least recently used went');
    assert.ok(cache.fixed('$a') && cache.fixed('$c') && cache.fixed('$d'));

    const parsed = cache.parsed(a) as { content: { body: string; nested: { list: number[] } } };
    assert.equal(parsed.content.body, 'x'.repeat(100));
    assert.equal(cache.parsed(a), parsed, 'parsed once, then shared');
    assert.throws(() => {
      parsed.content.nested.list.push(3);
    }, TypeError);
    const other = { ...a, pdu: JSON.stringify({ type: 'm.room.message', content: { body: 'other' } }) };
    assert.equal((cache.parsed(other) as { content: { body: string } }).content.body, 'other', 'a different PDU under the same ID is parsed, not taken from the cache');
    cache.delete('$a');
    assert.equal(cache.fixed('$a'), undefined);
  });
});

for (const engine of ENGINES) {
  // Engine-specific: the cache sits in front of both drivers' reads, and rolled-back writes differ.
  describe(`event cache in the homeserver (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine);
    });
    after(async () => {
      await server.close();
    });

    it('never serves an event whose transaction rolled back', async () => {
      const alice = await server.api.register('alice');
      const { room_id: roomId } = (await server.api.post<{ room_id: string }>('/v3/createRoom', {}, { token: alice.access_token })).body;
      const { eventCreator, store } = server.hs.services;
      let phantom = '';
      await assert.rejects(
        eventCreator.write(roomId, async (room) => {
          phantom = (await room.append(alice.user_id, { type: 'm.room.message', content: { msgtype: 'm.text', body: 'never' } })).event_id;
          throw new Error('roll back');
        }),
        /roll back/,
      );
      assert.equal(await store.events.get(phantom), undefined);
      assert.deepEqual(await store.events.getMany([phantom]), []);
      const res = await server.api.get<{ errcode?: string }>(`/v3/rooms/${enc(roomId)}/event/${enc(phantom)}`, { token: alice.access_token });
      assert.equal(res.status, 404);
      const page = await server.api.get<{ chunk: Event[] }>(`/v3/rooms/${enc(roomId)}/messages?dir=b&limit=50`, { token: alice.access_token });
      assert.ok(!page.body.chunk.some((e) => e.event_id === phantom));
    });
  });
}

describe('event cache across two homeserver processes sharing PostgreSQL', () => {
  const servers = twoProcessesOnePostgres();

  it('serves an event redacted by the other process redacted, though this one had it cached', async () => {
    const alice = await servers.first.api.register('alice');
    const bob = await servers.second.api.register('bob');
    const { room_id: roomId } = (await servers.first.api.post<{ room_id: string }>('/v3/createRoom', { preset: 'public_chat' }, { token: alice.access_token })).body;
    assert.equal((await servers.second.api.post(`/v3/rooms/${enc(roomId)}/join`, {}, { token: bob.access_token })).status, 200);
    const sent = await servers.first.api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'secret' }, { token: alice.access_token });
    const eventId = sent.body.event_id;
    const read = (server: TestServer, token: string) => server.api.get<Event>(`/v3/rooms/${enc(roomId)}/event/${enc(eventId)}`, { token });
    // Both processes read it (and the one that wrote it had it from the insert).
    assert.equal((await read(servers.first, alice.access_token)).body.content.body, 'secret');
    assert.equal((await read(servers.second, bob.access_token)).body.content.body, 'secret');

    const own = await servers.second.api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/send/m.room.message/t2`, { msgtype: 'm.text', body: 'bob secret' }, { token: bob.access_token });
    const bobEvent = own.body.event_id;
    const readBob = (server: TestServer) => server.api.get<Event>(`/v3/rooms/${enc(roomId)}/event/${enc(bobEvent)}`, { token: alice.access_token });
    assert.equal((await readBob(servers.first)).body.content.body, 'bob secret', 'the first process reads (and caches) it');
    const redacted = await servers.second.api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/redact/${enc(bobEvent)}/r2`, {}, { token: bob.access_token });
    assert.equal(redacted.status, 200, JSON.stringify(redacted.body));

    const seen = (await readBob(servers.first)).body;
    assert.deepEqual(seen.content, {}, 'redacted on the process that had it cached');
    assert.equal(seen.unsigned?.redacted_because?.event_id, redacted.body.event_id);
    const page = await servers.first.api.get<{ chunk: Event[] }>(`/v3/rooms/${enc(roomId)}/messages?dir=b&limit=10`, { token: alice.access_token });
    assert.deepEqual(page.body.chunk.find((e) => e.event_id === bobEvent)?.content, {});
  });
});
