import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

type Session = { user_id: string; access_token: string; device_id: string };
type Pusher = Record<string, unknown> & { pushkey: string; app_id: string; data: Record<string, unknown> };

const GATEWAY = 'https://push.example.org/_matrix/push/v1/notify';
const httpPusher = (over: Record<string, unknown> = {}) => ({
  kind: 'http',
  app_id: 'org.example.app.ios',
  pushkey: 'key-1',
  app_display_name: 'Example',
  device_display_name: 'Phone',
  lang: 'en',
  data: { url: GATEWAY, format: 'event_id_only', custom: { x: 1 } },
  ...over,
});

// Pushers are stored rows with engine-specific upserts and deletes: both engines.
for (const engine of ENGINES) {
  describe(`pushers: GET /pushers and POST /pushers/set (${engine})`, () => {
    let server: TestServer;
    let alice: Session;
    let bob: Session;
    before(async () => {
      server = await startTestServer(engine);
      alice = await server.api.register('alice');
      bob = await server.api.register('bob');
    });
    after(() => server.close());

    const list = async (who: Session) => {
      const res = await server.api.get<{ pushers: Pusher[] }>('/v3/pushers', { token: who.access_token });
      assert.equal(res.status, 200);
      return res.body.pushers;
    };
    const set = (who: Session, body: Record<string, unknown>) => server.api.post('/v3/pushers/set', body, { token: who.access_token });

    it('creates, reads back, updates and deletes an http pusher', async () => {
      assert.deepEqual(await list(alice), []);
      assert.equal((await set(alice, { ...httpPusher(), profile_tag: 'tag' })).status, 200);
      const [pusher] = await list(alice);
      assert.deepEqual(pusher, {
        pushkey: 'key-1',
        kind: 'http',
        app_id: 'org.example.app.ios',
        app_display_name: 'Example',
        device_display_name: 'Phone',
        profile_tag: 'tag',
        lang: 'en',
        data: { url: GATEWAY, format: 'event_id_only', custom: { x: 1 } },
      });
      assert.equal((await set(alice, httpPusher({ device_display_name: 'Tablet', lang: 'fr' }))).status, 200);
      const updated = await list(alice);
      assert.equal(updated.length, 1, 'same app_id and pushkey: one pusher');
      assert.deepEqual([updated[0]!.device_display_name, updated[0]!.lang, updated[0]!.profile_tag], ['Tablet', 'fr', undefined]);
      assert.equal((await set(alice, { kind: null, app_id: 'org.example.app.ios', pushkey: 'key-1' })).status, 200);
      assert.deepEqual(await list(alice), []);
      assert.equal((await set(alice, { kind: null, app_id: 'org.example.app.ios', pushkey: 'never-set' })).status, 200, 'deleting nothing is fine');
    });

    it('append: false takes the pushkey from other users; append: true shares it', async () => {
      await set(alice, httpPusher({ pushkey: 'shared' }));
      await set(bob, httpPusher({ pushkey: 'shared', append: true }));
      assert.equal((await list(alice)).length, 1);
      assert.equal((await list(bob)).length, 1);
      await set(bob, httpPusher({ pushkey: 'shared' }));
      assert.deepEqual(await list(alice), [], "bob's pusher without append removed alice's");
      assert.equal((await list(bob)).length, 1);
      await set(bob, { kind: null, app_id: 'org.example.app.ios', pushkey: 'shared' });
    });

    it('refuses bad input with the spec errors', async () => {
      const expect = async (body: Record<string, unknown>, status: number, errcode: string) => {
        const res = await set(alice, body);
        assert.equal(res.status, status, JSON.stringify(body));
        assert.equal(res.body.errcode, errcode, JSON.stringify(res.body));
      };
      await expect({ app_id: 'a', pushkey: 'k' }, 400, 'M_MISSING_PARAM');
      await expect({ kind: 'http', pushkey: 'k' }, 400, 'M_MISSING_PARAM');
      await expect({ kind: 'http', app_id: 'a', pushkey: 'k', lang: 'en' }, 400, 'M_MISSING_PARAM');
      await expect(httpPusher({ data: {} }), 400, 'M_MISSING_PARAM');
      await expect(httpPusher({ data: { url: 'https://push.example.org/notify' } }), 400, 'M_INVALID_PARAM');
      await expect(httpPusher({ data: { url: 'ftp://push.example.org/_matrix/push/v1/notify' } }), 400, 'M_INVALID_PARAM');
      await expect(httpPusher({ data: { url: 'not a url' } }), 400, 'M_INVALID_PARAM');
      await expect(httpPusher({ data: { url: 42 } }), 400, 'M_INVALID_PARAM');
      await expect(httpPusher({ kind: 'carrier-pigeon' }), 400, 'M_INVALID_PARAM');
      await expect(httpPusher({ app_id: 'x'.repeat(65) }), 400, 'M_INVALID_PARAM');
      await expect(httpPusher({ pushkey: 'é'.repeat(257) }), 400, 'M_INVALID_PARAM');
      await expect(httpPusher({ kind: 5 }), 400, 'M_BAD_JSON');
      await expect(httpPusher({ data: 'url' }), 400, 'M_BAD_JSON');
      await expect(httpPusher({ append: 'yes' }), 400, 'M_BAD_JSON');
      assert.deepEqual(await list(alice), [], 'nothing was stored');
      assert.equal((await set(alice, httpPusher({ app_id: 'x'.repeat(64), pushkey: 'k'.repeat(512) }))).status, 200, 'the limits themselves are allowed');
      await set(alice, { kind: null, app_id: 'x'.repeat(64), pushkey: 'k'.repeat(512) });
      const anonymous = await server.api.get('/v3/pushers');
      assert.equal(anonymous.status, 401);
    });

    it('an email pusher needs one of the account\'s own verified addresses', async () => {
      const email = { kind: 'email', app_id: 'm.email', pushkey: 'Alice@Example.org', app_display_name: 'Email', device_display_name: 'Mail', lang: 'en', data: {} };
      const refused = await set(alice, email);
      assert.deepEqual([refused.status, refused.body.errcode], [400, 'M_THREEPID_NOT_FOUND']);
      await server.hs.services.store.threepids.add({ medium: 'email', address: 'alice@example.org', user_id: alice.user_id, validated_ts: Date.now(), added_ts: Date.now() });
      assert.equal((await set(alice, email)).status, 200);
      const [pusher] = await list(alice);
      assert.deepEqual([pusher?.kind, pusher?.pushkey], ['email', 'alice@example.org']);
      assert.equal((await set(bob, { ...email, pushkey: 'alice@example.org' })).body.errcode, 'M_THREEPID_NOT_FOUND', "not someone else's address");
      await set(alice, { kind: null, app_id: 'm.email', pushkey: 'alice@example.org' });
    });

    it("logging out deletes the pushers that device set, and only those (as Synapse does)", async () => {
      const phone = await server.api.login('alice');
      await set(phone, httpPusher({ pushkey: 'phone' }));
      await set(alice, httpPusher({ pushkey: 'first-device' }));
      assert.equal((await list(alice)).length, 2);
      assert.equal((await server.api.post('/v3/logout', {}, { token: phone.access_token })).status, 200);
      assert.deepEqual((await list(alice)).map((p) => p.pushkey), ['first-device']);
      await set(alice, { kind: null, app_id: 'org.example.app.ios', pushkey: 'first-device' });
    });
  });
}
