import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';

type Registered = { user_id: string; access_token: string; device_id: string };
type Event = { event_id: string; type: string; sender: string; state_key?: string; content: Record<string, unknown> };
type Context = { event: Event; state: Event[]; end: string };

const enc = encodeURIComponent;
/** More state changes than MAX_STATE_HOPS (100): the chain of deltas is cut by a full copy on the way. */
const TOPICS = 106;

/**
 * State snapshots at an event are read as a chain of state groups (each a delta on the one before,
 * with a full copy every 100 hops) and then the chain's deltas: the state at any event must be what
 * the room's history says, whichever group of the chain set each entry, before and after a full copy.
 */
for (const engine of HTTP_ENGINES) {
  describe(`rooms: state at an event, read along the chain of state groups (${engine})`, () => {
    let server: TestServer;
    let alice: Registered;
    let bob: Registered;
    let carol: Registered;
    let roomId: string;
    /** The topic event set at step i, and who was a member then. */
    const topics: { eventId: string; carol: 'join' | 'leave' | undefined }[] = [];

    before(async () => {
      server = await startTestServer(engine);
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
      carol = await server.api.register('carol');
      const created = await server.api.post<{ room_id: string }>('/v3/createRoom', { preset: 'public_chat', topic: 'first' }, { token: alice.access_token });
      roomId = created.body.room_id;
      assert.equal((await server.api.post(`/v3/rooms/${enc(roomId)}/join`, {}, { token: bob.access_token })).status, 200);
      let carolMembership: 'join' | 'leave' | undefined;
      for (let i = 0; i < TOPICS; i++) {
        // Carol comes in the middle of one stretch of deltas and leaves after the full copy.
        if (i === 40) {
          assert.equal((await server.api.post(`/v3/rooms/${enc(roomId)}/join`, {}, { token: carol.access_token })).status, 200);
          carolMembership = 'join';
        }
        if (i === 103) {
          assert.equal((await server.api.post(`/v3/rooms/${enc(roomId)}/leave`, {}, { token: carol.access_token })).status, 200);
          carolMembership = 'leave';
        }
        const res = await server.api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: `topic ${i}` }, { token: alice.access_token });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        topics.push({ eventId: res.body.event_id, carol: carolMembership });
      }
    });
    after(() => server.close());

    const context = async (eventId: string) => {
      const res = await server.api.get<Context>(`/v3/rooms/${enc(roomId)}/context/${enc(eventId)}?limit=0`, { token: bob.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    };
    const stateOf = (events: Event[], type: string, stateKey: string) => events.find((e) => e.type === type && (e.state_key ?? '') === stateKey);

    it('gives each topic event the state after it: its own topic, the members of the time, the create event from the chain\'s start', async () => {
      for (const i of [0, 1, 39, 40, 41, 98, 99, 100, 101, 102, 103, 104, TOPICS - 1]) {
        const { state } = await context(topics[i]!.eventId);
        assert.equal(stateOf(state, 'm.room.topic', '')?.content.topic, `topic ${i}`, `the topic at step ${i}`);
        assert.equal(stateOf(state, 'm.room.topic', '')?.event_id, topics[i]!.eventId);
        assert.ok(stateOf(state, 'm.room.create', ''), `the create event at step ${i}`);
        assert.equal(stateOf(state, 'm.room.member', alice.user_id)?.content.membership, 'join');
        assert.equal(stateOf(state, 'm.room.member', bob.user_id)?.content.membership, 'join');
        assert.equal(stateOf(state, 'm.room.member', carol.user_id)?.content.membership, topics[i]!.carol, `carol's membership at step ${i}`);
        assert.equal(state.filter((e) => e.type === 'm.room.topic').length, 1, 'one entry per key: later groups win');
      }
    });

    it('gives the members at a point (GET /members?at=) as they were then', async () => {
      for (const i of [10, 50, 102, 104]) {
        const { end } = await context(topics[i]!.eventId);
        const res = await server.api.get<{ chunk: Event[] }>(`/v3/rooms/${enc(roomId)}/members?at=${enc(end)}`, { token: bob.access_token });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        const members = Object.fromEntries(res.body.chunk.map((e) => [e.state_key, e.content.membership]));
        const expected: Record<string, unknown> = { [alice.user_id]: 'join', [bob.user_id]: 'join' };
        if (topics[i]!.carol) expected[carol.user_id] = topics[i]!.carol;
        assert.deepEqual(members, expected, `the members at step ${i}`);
      }
    });

    it('gives an initial sync the state before its timeline, from a group past the full copy', async () => {
      const filter = JSON.stringify({ room: { timeline: { limit: 1 } } });
      const res = await server.api.get<{ rooms: { join: Record<string, { timeline: { events: Event[] }; state: { events: Event[] } }> } }>(`/v3/sync?filter=${enc(filter)}`, { token: bob.access_token });
      assert.equal(res.status, 200);
      const room = res.body.rooms.join[roomId]!;
      assert.deepEqual(room.timeline.events.map((e) => e.event_id), [topics[TOPICS - 1]!.eventId]);
      // The timeline's topic event replaces the one before it: the state holds that one.
      assert.equal(stateOf(room.state.events, 'm.room.topic', '')?.content.topic, `topic ${TOPICS - 2}`);
      assert.equal(stateOf(room.state.events, 'm.room.member', carol.user_id)?.content.membership, 'leave');
      assert.ok(stateOf(room.state.events, 'm.room.join_rules', ''));
    });
  });
}
