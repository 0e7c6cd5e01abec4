import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN_SECRET, registerWithSecret } from './helpers/admin.js';
import { enc, roomActions, type User } from './helpers/room-actions.js';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

type Event = { event_id: string; type: string; sender: string; content: Record<string, unknown>; unsigned?: Record<string, unknown> };

const PASSWORD = 'correct horse battery';

// Erasure (deactivation with `erase: true`): the erased account's events keep their content for
// those who were joined when they were sent, and lose it (served as a redaction leaves them) for
// everyone who came later, on every read path. Both engines: the marks are SQL updates of their own.
for (const engine of ENGINES) {
  describe(`rooms: events of an erased account (${engine})`, () => {
    let server: TestServer;
    const actions = roomActions(() => server);
    let admin: User;
    before(async () => {
      server = await startTestServer(engine, { registration_shared_secret: ADMIN_SECRET });
      admin = await registerWithSecret(server, 'root', 'an admin passphrase 1', true);
    });
    after(() => server.close());

    const register = (name: string): Promise<User> => server.api.register(name);
    const deactivate = async (who: User, erase: boolean) => {
      const auth = { type: 'm.login.password', identifier: { type: 'm.id.user', user: who.user_id }, password: PASSWORD };
      const res = await server.api.post('/v3/account/deactivate', { auth, erase }, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const timeline = async (who: User, roomId: string): Promise<Event[]> =>
      ((await actions.sync(who, { filter: { room: { timeline: { limit: 50 } } } })).rooms.join[roomId]!.timeline.events as unknown as Event[]);
    const messages = async (who: User, roomId: string): Promise<Event[]> => {
      const res = await server.api.get<{ chunk: Event[] }>(`/v3/rooms/${enc(roomId)}/messages?dir=b&limit=50`, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.chunk;
    };
    const event = async (who: User, roomId: string, eventId: string): Promise<Event> => {
      const res = await server.api.get<Event>(`/v3/rooms/${enc(roomId)}/event/${enc(eventId)}`, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    };
    const context = async (who: User, roomId: string, eventId: string): Promise<Event> => {
      const res = await server.api.get<{ event: Event }>(`/v3/rooms/${enc(roomId)}/context/${enc(eventId)}?limit=0`, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.event;
    };
    const find = (events: Event[], eventId: string): Event => {
      const found = events.find((e) => e.event_id === eventId);
      assert.ok(found, `${eventId} is served`);
      return found;
    };

    it('serves them whole to members joined when they were sent and redacted to later joiners, on sync, /messages, /event and /context', async () => {
      const [creator, member, joiner] = [await register('eve'), await register('mallory'), await register('trent')];
      const roomId = await actions.createRoom(creator, { preset: 'public_chat', name: 'Erasure' });
      await actions.join(member, roomId);
      const message = await actions.send(creator, roomId, 'body1');
      const topic = (await server.api.put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: 'secret topic' }, { token: creator.access_token })).body.event_id;
      await actions.join(joiner, roomId);
      assert.equal(find(await timeline(joiner, roomId), message).content.body, 'body1', 'before the erasure the joiner sees the message too (shared history)');

      await deactivate(creator, true);

      for (const read of [
        async (who: User) => find(await timeline(who, roomId), message),
        async (who: User) => find(await messages(who, roomId), message),
        (who: User) => event(who, roomId, message),
        (who: User) => context(who, roomId, message),
      ]) {
        const seenByMember = await read(member);
        assert.equal(seenByMember.content.body, 'body1', 'the member joined at the event keeps its content');
        const seenByJoiner = await read(joiner);
        assert.equal(seenByJoiner.type, 'm.room.message');
        assert.equal(seenByJoiner.sender, creator.user_id);
        assert.deepEqual(seenByJoiner.content, {}, 'the later joiner gets it redacted');
        assert.equal(seenByJoiner.unsigned?.redacted_because, undefined, 'no redaction event is invented');
      }
      // A state event loses what a redaction removes: the topic is not among the keys m.room.topic keeps.
      assert.equal((await event(member, roomId, topic)).content.topic, 'secret topic');
      assert.deepEqual((await event(joiner, roomId, topic)).content, {});
      // The erased account's own leave is served as a redaction keeps a member event: its membership.
      const leave = (await messages(joiner, roomId)).find((e) => e.type === 'm.room.member' && e.sender === creator.user_id && e.content.membership === 'leave');
      assert.ok(leave, 'the leave the deactivation wrote');
      assert.deepEqual(leave.content, { membership: 'leave' });
    });

    it("judges each room of one sync by the viewer's own membership there", async () => {
      const [creator, viewer] = [await register('oscar'), await register('pat')];
      const early = await actions.createRoom(creator);
      await actions.join(viewer, early);
      const seen = await actions.send(creator, early, 'pat was there');
      const late = await actions.createRoom(creator);
      const unseen = await actions.send(creator, late, 'before pat');
      await actions.join(viewer, late);
      await deactivate(creator, true);
      const sync = await actions.sync(viewer, { filter: { room: { timeline: { limit: 50 } } } });
      const timelineOf = (roomId: string) => sync.rooms.join[roomId]!.timeline.events as unknown as Event[];
      assert.equal(find(timelineOf(early), seen).content.body, 'pat was there');
      assert.deepEqual(find(timelineOf(late), unseen).content, {});
    });

    it('leaves the events of an account deactivated without erasure whole', async () => {
      const [creator, joiner] = [await register('victor'), await register('walter')];
      const roomId = await actions.createRoom(creator);
      const message = await actions.send(creator, roomId, 'kept');
      await actions.join(joiner, roomId);
      await deactivate(creator, false);
      assert.equal((await event(joiner, roomId, message)).content.body, 'kept');
    });

    it('follows the admin API: erased with the deactivation, whole again once the account is reactivated', async () => {
      const [creator, joiner] = [await register('peggy'), await register('sybil')];
      const roomId = await actions.createRoom(creator);
      const message = await actions.send(creator, roomId, 'from peggy');
      await actions.join(joiner, roomId);
      const res = await server.api.post(`/_synapse/admin/v1/deactivate/${enc(creator.user_id)}`, { erase: true }, { token: admin.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual((await event(joiner, roomId, message)).content, {});
      const user = await server.api.get<{ erased: boolean }>(`/_synapse/admin/v2/users/${enc(creator.user_id)}`, { token: admin.access_token });
      assert.equal(user.body.erased, true);

      const reactivated = await server.api.put(`/_synapse/admin/v2/users/${enc(creator.user_id)}`, { deactivated: false, password: 'a new passphrase 22' }, { token: admin.access_token });
      assert.equal(reactivated.status, 200, JSON.stringify(reactivated.body));
      assert.equal((await event(joiner, roomId, message)).content.body, 'from peggy');
    });
  });
}
