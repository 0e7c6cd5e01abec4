import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { WriteGate } from '../src/services/rooms/event-creator.js';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

/**
 * Many clients writing into one room at once: the room's events must stay one chain (each event's
 * only prev_event is the one before it), with one forward extremity, stream positions growing with
 * depth, and nothing lost. Run on both engines: the room lock is engine-specific (a row lock on
 * PostgreSQL, SQLite's single writer), and on PostgreSQL with two processes on one database.
 */

type Registered = { user_id: string; access_token: string; device_id: string };
type Pdu = { prev_events: string[]; depth: number; sender: string; type: string; content: Record<string, unknown> };

const enc = encodeURIComponent;
const SENDERS = 20;
const PER_SENDER = 5;

async function registerMany(servers: TestServer[], prefix: string, n: number): Promise<Registered[]> {
  // Registered a few at a time: argon2 (cheap in tests) and UIA sessions are not what is under test.
  const users: Registered[] = [];
  for (let i = 0; i < n; i += 5) {
    const batch = Array.from({ length: Math.min(5, n - i) }, (_, j) => servers[(i + j) % servers.length]!.api.register(`${prefix}${i + j}`));
    users.push(...(await Promise.all(batch)));
  }
  return users;
}

/** A public room made by the first user, joined by all the others at once (through the server given for each). */
async function roomWith(servers: TestServer[], users: Registered[]): Promise<string> {
  const created = await servers[0]!.api.post<{ room_id: string }>('/v3/createRoom', { preset: 'public_chat' }, { token: users[0]!.access_token });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const roomId = created.body.room_id;
  const joins = await Promise.all(users.slice(1).map((user, i) => servers[(i + 1) % servers.length]!.api.post(`/v3/join/${enc(roomId)}`, {}, { token: user.access_token })));
  assert.deepEqual(joins.map((j) => j.status), Array<number>(users.length - 1).fill(200), 'every join answered 200');
  return roomId;
}

/** Every user sends PER_SENDER messages, all at once, each through the server given for it. */
async function sendAll(servers: TestServer[], users: Registered[], roomId: string): Promise<Map<string, string>> {
  const requests: Promise<{ key: string; status: number; body: Record<string, unknown> }>[] = [];
  for (let m = 0; m < PER_SENDER; m++) {
    users.forEach((user, u) => {
      const key = `${u}-${m}`;
      const api = servers[u % servers.length]!.api;
      requests.push(api.put(`/v3/rooms/${enc(roomId)}/send/m.room.message/t${m}`, { msgtype: 'm.text', body: key }, { token: user.access_token }).then((res) => ({ key, ...res })));
    });
  }
  const answers = await Promise.all(requests);
  const failed = answers.filter((a) => a.status !== 200);
  assert.deepEqual(failed.map((a) => `${a.key}: ${a.status} ${JSON.stringify(a.body)}`), [], 'every send answered 200');
  return new Map(answers.map((a) => [a.key, a.body.event_id as string]));
}

/**
 * Asserts that writes that lost a race left nothing behind: no DAG edge, search row or notification
 * of an event that was not stored (on PostgreSQL they go with the commit that then fails), and one
 * forward extremity.
 */
async function assertNoTraceOfLosers(server: TestServer, roomId: string): Promise<void> {
  const { kysely } = server.hs.services.store.db;
  const orphans = await sql<{ kind: string; n: number }>`
    SELECT 'edges' AS kind, count(*) AS n FROM event_edges WHERE event_id NOT IN (SELECT event_id FROM events)
    UNION ALL SELECT 'auth', count(*) FROM event_auth WHERE event_id NOT IN (SELECT event_id FROM events)
    UNION ALL SELECT 'search', count(*) FROM event_search WHERE event_id NOT IN (SELECT event_id FROM events)
    UNION ALL SELECT 'notifications', count(*) FROM push_notifications WHERE event_id NOT IN (SELECT event_id FROM events)`.execute(kysely);
  assert.deepEqual(orphans.rows.map((r) => `${r.kind} ${Number(r.n)}`), ['edges 0', 'auth 0', 'search 0', 'notifications 0']);
  const extremities = await sql<{ event_id: string }>`SELECT event_id FROM forward_extremities WHERE room_id = ${roomId}`.execute(kysely);
  assert.equal(extremities.rows.length, 1, 'one forward extremity');
}

/** Asserts the room's events are one chain in stream order, with one forward extremity at its end. */
async function assertOneChain(server: TestServer, roomId: string): Promise<{ event_id: string; pdu: Pdu; stream_pos: number }[]> {
  const store = server.hs.services.store;
  const rows = (await store.events.latest(roomId, 0, Number.MAX_SAFE_INTEGER, 10_000)).reverse();
  const events = rows.map((r) => ({ event_id: r.event_id, pdu: JSON.parse(r.pdu) as Pdu, stream_pos: Number(r.stream_pos), depth: Number(r.depth) }));
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    assert.deepEqual(e.pdu.prev_events, i === 0 ? [] : [events[i - 1]!.event_id], `event ${i} (${e.event_id}) points at the event before it by stream position`);
    assert.equal(e.pdu.depth, i + 1, `event ${i} has depth ${i + 1}`);
    assert.equal(e.depth, e.pdu.depth, 'the stored depth is the PDU depth');
    if (i > 0) assert.ok(e.stream_pos > events[i - 1]!.stream_pos, 'stream positions are unique and grow with depth');
  }
  const edges = await store.db.kysely.selectFrom('event_edges').innerJoin('events', 'events.event_id', 'event_edges.event_id').select(['event_edges.event_id', 'event_edges.prev_event_id']).where('events.room_id', '=', roomId).execute();
  assert.equal(edges.length, events.length - 1, 'one edge per event after the create event');
  const extremities = await store.db.kysely.selectFrom('forward_extremities').select('event_id').where('room_id', '=', roomId).execute();
  assert.deepEqual(extremities.map((r) => r.event_id), [events.at(-1)!.event_id], 'exactly one forward extremity: the last event');
  const room = await store.rooms.get(roomId);
  assert.equal(Number(room!.depth), events.length, "the room's depth is its last event's");
  assert.equal(Number(room!.last_pos), events.at(-1)!.stream_pos, "the room's last position is its last event's");
  return events;
}

function assertAllStored(events: { event_id: string; pdu: Pdu }[], sent: Map<string, string>, users: Registered[]): void {
  const messages = events.filter((e) => e.pdu.type === 'm.room.message');
  assert.equal(messages.length, SENDERS * PER_SENDER, 'every message stored once');
  assert.equal(new Set(sent.values()).size, SENDERS * PER_SENDER, 'every send answered its own event ID');
  const byId = new Map(messages.map((e) => [e.event_id, e.pdu]));
  for (const [key, eventId] of sent) {
    const pdu = byId.get(eventId);
    assert.ok(pdu, `the event answered for ${key} is stored`);
    assert.equal(pdu.content.body, key);
    assert.equal(pdu.sender, users[Number(key.split('-')[0])]!.user_id);
  }
}

for (const engine of ENGINES) {
  describe(`rooms: concurrent writers into one room (${engine})`, () => {
    let server: TestServer;
    let users: Registered[];
    let roomId: string;
    before(async () => {
      server = await startTestServer(engine);
      users = await registerMany([server], 'sender', SENDERS);
      roomId = await roomWith([server], users);
    });
    after(() => server.close());

    it(`keeps one chain when ${SENDERS} senders send ${PER_SENDER} messages each at once`, async () => {
      const joined = await server.hs.services.store.rooms.members(roomId, ['join']);
      assert.equal(joined.length, SENDERS, 'the concurrent joins all took effect');
      const heads = server.hs.services.eventCreator.headReads;
      const before = { ...heads };
      const sent = await sendAll([server], users, roomId);
      // Each write left its head for the next, which found it although the two raced to the lock
      // (the next one's lock can be seen before the last one's commit): no state read from the database.
      assert.deepEqual({ cached: heads.cached - before.cached, database: heads.database - before.database }, { cached: SENDERS * PER_SENDER, database: 0 });
      const events = await assertOneChain(server, roomId);
      assertAllStored(events, sent, users);
    });

    it('answers one event to the same transaction ID sent 10 times at once', async () => {
      const sender = users[1]!;
      const before = (await server.hs.services.store.rooms.get(roomId))!;
      const path = `/v3/rooms/${enc(roomId)}/send/m.room.message/same-txn`;
      const answers = await Promise.all(Array.from({ length: 10 }, () => server.api.put<{ event_id: string }>(path, { msgtype: 'm.text', body: 'once' }, { token: sender.access_token })));
      assert.deepEqual(answers.map((a) => a.status), Array<number>(10).fill(200));
      const ids = new Set(answers.map((a) => a.body.event_id));
      assert.equal(ids.size, 1, `one event ID for all the retries, got ${[...ids].join(', ')}`);
      const events = await assertOneChain(server, roomId);
      assert.equal(events.length, Number(before.depth) + 1, 'exactly one event added');
      assert.equal(events.at(-1)!.event_id, [...ids][0]);
      assert.equal(events.filter((e) => e.pdu.content.body === 'once').length, 1);
      await assertNoTraceOfLosers(server, roomId);
      // A retry afterwards answers the same event still.
      const later = await server.api.put<{ event_id: string }>(path, { msgtype: 'm.text', body: 'once' }, { token: sender.access_token });
      assert.equal(later.body.event_id, [...ids][0]);
    });
  });
}

describe('rooms: concurrent writers through two processes on one PostgreSQL database', () => {
  let first: TestServer;
  let second: TestServer;
  let users: Registered[];
  let roomId: string;
  before(async () => {
    first = await startTestServer('postgres');
    second = await startTestServer('postgres', {}, { database: first.config.database as unknown as Record<string, unknown> });
    users = await registerMany([first, second], 'sender', SENDERS);
    roomId = await roomWith([first, second], users);
  });
  after(async () => {
    await second.close();
    await first.close();
  });

  it(`keeps one chain when ${SENDERS} senders, half on each process, send ${PER_SENDER} messages each at once`, async () => {
    const sent = await sendAll([first, second], users, roomId);
    const events = await assertOneChain(first, roomId);
    assertAllStored(events, sent, users);
    const senders = new Set(events.filter((e) => e.pdu.type === 'm.room.message').map((e) => e.pdu.sender));
    assert.equal(senders.size, SENDERS);
  });

  it('answers one event to the same transaction ID sent 10 times at once, split across both processes', async () => {
    const sender = users[2]!;
    const path = `/v3/rooms/${enc(roomId)}/send/m.room.message/split-txn`;
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? first : second).api.put<{ event_id: string }>(path, { msgtype: 'm.text', body: 'split' }, { token: sender.access_token })));
    assert.deepEqual(answers.map((a) => a.status), Array<number>(10).fill(200));
    assert.equal(new Set(answers.map((a) => a.body.event_id)).size, 1);
    const events = await assertOneChain(first, roomId);
    assert.equal(events.filter((e) => e.pdu.content.body === 'split').length, 1);
    await assertNoTraceOfLosers(first, roomId);
  });
});

describe('rooms: the write gate in front of the database', () => {
  /** Runs tasks through the gate, each waiting for its own release; records what runs at once. */
  function harness(gate: WriteGate) {
    const running = new Map<string, number>();
    let total = 0;
    let maxTotal = 0;
    const maxPerKey = new Map<string, number>();
    const started: string[] = [];
    const releases = new Map<string, () => void>();
    const task = (key: string, name: string, fail = false) =>
      gate.run(key, async () => {
        started.push(name);
        running.set(key, (running.get(key) ?? 0) + 1);
        maxPerKey.set(key, Math.max(maxPerKey.get(key) ?? 0, running.get(key)!));
        maxTotal = Math.max(maxTotal, ++total);
        await new Promise<void>((resolve) => releases.set(name, resolve));
        running.set(key, running.get(key)! - 1);
        total -= 1;
        if (fail) throw new Error(`${name} failed`);
        return name;
      });
    const tick = () => new Promise((r) => setImmediate(r));
    return { task, started, releases, maxPerKey, maxTotal: () => maxTotal, tick };
  }

  it('lets two writers of one room in at a time, in arrival order, and hands slots on when one fails', async () => {
    const h = harness(new WriteGate(10));
    const results = ['a1', 'a2', 'a3', 'a4'].map((name, i) => h.task('!a', name, i === 0).catch((err: Error) => err.message));
    await h.tick();
    assert.deepEqual(h.started, ['a1', 'a2']);
    h.releases.get('a1')!();
    await h.tick();
    assert.deepEqual(h.started, ['a1', 'a2', 'a3'], 'a failed writer frees its slot');
    h.releases.get('a3')!();
    await h.tick();
    assert.deepEqual(h.started, ['a1', 'a2', 'a3', 'a4']);
    h.releases.get('a2')!();
    h.releases.get('a4')!();
    assert.deepEqual(await Promise.all(results), ['a1 failed', 'a2', 'a3', 'a4']);
    assert.equal(h.maxPerKey.get('!a'), 2);
  });

  it('bounds the writers of all rooms together', async () => {
    const h = harness(new WriteGate(3));
    const names = ['a', 'b', 'c', 'd', 'e'];
    const results = names.map((name) => h.task(`!${name}`, name));
    await h.tick();
    assert.deepEqual(h.started, ['a', 'b', 'c']);
    h.releases.get('b')!();
    await h.tick();
    assert.deepEqual(h.started, ['a', 'b', 'c', 'd']);
    for (const name of ['a', 'c', 'd']) h.releases.get(name)!();
    await h.tick();
    h.releases.get('e')!();
    assert.deepEqual(await Promise.all(results), names);
    assert.equal(h.maxTotal(), 3);
  });
});
