import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeIdentityServer } from './helpers/fake-identity-server.js';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

/**
 * Invites by email address (client-server API "Third-party invites") through a trusted identity
 * server (the fake one, which hashes lookups, stores invites, signs proofs and answers key validity
 * with its own code): a bound address is invited as its user; an unbound one gets an
 * m.room.third_party_invite event, which the identity server's onbind call, or a join with
 * third_party_signed, turns into the user's invite once their proof checks against the room's keys
 * and the identity server still vouches for the key.
 */

type Session = { user_id: string; access_token: string };
const enc = encodeURIComponent;

for (const engine of ENGINES) {
  describe(`rooms: third-party invites (${engine})`, () => {
    let server: TestServer;
    let fake: FakeIdentityServer;
    let alice: Session;
    let users = 0;
    const register = () => server.api.register(`tpi${++users}`);

    before(async () => {
      fake = await FakeIdentityServer.start();
      server = await startTestServer(engine, { trusted_third_party_id_servers: [fake.url], identity_server_timeout: '2s', rc_third_party_invite: { per_second: 100, burst_count: 100 } });
      fake.homeserverUrl = server.url;
      alice = await register();
      assert.equal((await server.api.put(`/v3/profile/${enc(alice.user_id)}/displayname`, { displayname: 'Alice' }, { token: alice.access_token })).status, 200);
    });
    after(async () => {
      await server.close();
      await fake.stop();
    });

    const newRoom = async (body: Record<string, unknown> = {}) => {
      const res = await server.api.post<{ room_id: string }>('/v3/createRoom', { preset: 'private_chat', name: 'Lemurs', ...body }, { token: alice.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.room_id;
    };
    const inviteByEmail = (roomId: string, address: string, who: Session = alice, idServer = fake.name) =>
      server.api.post(`/v3/rooms/${enc(roomId)}/invite`, { id_server: idServer, id_access_token: 'is-token', medium: 'email', address }, { token: who.access_token });
    const membership = async (roomId: string, userId: string) => {
      const res = await server.api.get<Record<string, unknown>>(`/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`, { token: alice.access_token });
      return res.status === 200 ? res.body : undefined;
    };
    const thirdPartyInvites = async (roomId: string) => {
      const res = await server.api.get<{ type: string; state_key: string; sender: string; content: Record<string, unknown> }[]>(`/v3/rooms/${enc(roomId)}/state`, { token: alice.access_token });
      return res.body.filter((e) => e.type === 'm.room.third_party_invite');
    };
    const onBind = (body: Record<string, unknown>) =>
      fetch(`${server.url}/_matrix/federation/v1/3pid/onbind`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    /** An unbound address invited into a new room: the room, and the token of its m.room.third_party_invite. */
    const invitedUnbound = async (address: string) => {
      const roomId = await newRoom();
      assert.equal((await inviteByEmail(roomId, address)).status, 200);
      const [tpi] = await thirdPartyInvites(roomId);
      assert.ok(tpi, 'an m.room.third_party_invite event');
      return { roomId, token: tpi.state_key };
    };
    const bindCall = (address: string, user: Session, roomId: string, token: string, key: 'long-term' | 'ephemeral' = 'long-term') => ({
      address,
      medium: 'email',
      mxid: user.user_id,
      invites: [{ address, medium: 'email', mxid: user.user_id, room_id: roomId, sender: alice.user_id, signed: fake.sign({ mxid: user.user_id, token }, key) }],
    });

    it('invites the user an address is bound to, without storing an invite at the identity server', async () => {
      const bob = await register();
      fake.bindings.set('email bob@example.org', bob.user_id);
      const roomId = await newRoom();
      const stored = fake.storedInvites.length;
      assert.equal((await inviteByEmail(roomId, 'bob@example.org')).status, 200);
      assert.equal((await membership(roomId, bob.user_id))?.membership, 'invite');
      assert.equal(fake.storedInvites.length, stored);
      assert.deepEqual(await thirdPartyInvites(roomId), []);
      // The lookup went hashed with the identity server's pepper, never the address in the clear.
      assert.equal(fake.lookups.at(-1)?.algorithm, 'sha256');
      assert.ok(!JSON.stringify(fake.lookups.at(-1)).includes('bob@example.org'));
    });

    it('invites bound addresses given to createRoom as invite_3pid', async () => {
      const dan = await register();
      fake.bindings.set('email dan@example.org', dan.user_id);
      const roomId = await newRoom({ invite_3pid: [{ id_server: fake.name, id_access_token: 'is-token', medium: 'email', address: 'dan@example.org' }] });
      assert.equal((await membership(roomId, dan.user_id))?.membership, 'invite');
    });

    it('stores an invite for an unbound address, and the onbind proof makes it the user’s invite, which they accept', async () => {
      const { roomId, token } = await invitedUnbound('carol@example.org');
      const stored = fake.storedInvites.at(-1)!;
      assert.deepEqual(
        { medium: stored.medium, address: stored.address, room_id: stored.room_id, sender: stored.sender, room_name: stored.room_name, sender_display_name: stored.sender_display_name },
        { medium: 'email', address: 'carol@example.org', room_id: roomId, sender: alice.user_id, room_name: 'Lemurs', sender_display_name: 'Alice' },
      );
      const [tpi] = await thirdPartyInvites(roomId);
      assert.equal(tpi!.sender, alice.user_id);
      assert.deepEqual(tpi!.content.public_keys, [
        { public_key: fake.longTermKey, key_validity_url: `${fake.url}/_matrix/identity/v2/pubkey/isvalid` },
        { public_key: fake.ephemeralKey, key_validity_url: `${fake.url}/_matrix/identity/v2/pubkey/ephemeral/isvalid` },
      ]);
      assert.equal(tpi!.content.public_key, fake.longTermKey);
      assert.equal(tpi!.content.display_name, 'c...@e...');

      const carol = await register();
      const bound = await onBind(bindCall('carol@example.org', carol, roomId, token));
      assert.equal(bound.status, 200);
      const invite = await membership(roomId, carol.user_id);
      assert.equal(invite?.membership, 'invite');
      assert.deepEqual((invite?.third_party_invite as { display_name: string }).display_name, 'c...@e...');
      const joined = await server.api.post(`/v3/rooms/${enc(roomId)}/join`, {}, { token: carol.access_token });
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
      assert.equal((await membership(roomId, carol.user_id))?.membership, 'join');
    });

    it('turns nothing into an invite when the key was revoked, the signature is not the invite’s keys’, or the identity server is down', async () => {
      const cases: [string, () => Promise<void>, () => Promise<void>][] = [
        ['revoked', async () => void fake.revoked.add(fake.longTermKey), async () => void fake.revoked.clear()],
        ['down', () => fake.stop(), () => fake.start()],
      ];
      for (const [name, breakIt, mend] of cases) {
        const { roomId, token } = await invitedUnbound(`${name}@example.org`);
        const user = await register();
        await breakIt();
        try {
          assert.equal((await onBind(bindCall(`${name}@example.org`, user, roomId, token))).status, 200);
          assert.equal(await membership(roomId, user.user_id), undefined, `${name}: no invite`);
          const join = await server.api.post(`/v3/rooms/${enc(roomId)}/join`, {}, { token: user.access_token });
          assert.equal(join.status, 403, `${name}: the join is refused`);
        } finally {
          await mend();
        }
      }
      // Signed with a key the room's invite does not name.
      const { roomId, token } = await invitedUnbound('forged@example.org');
      const user = await register();
      const forged = bindCall('forged@example.org', user, roomId, token);
      const other = await FakeIdentityServer.start();
      forged.invites[0]!.signed = other.sign({ mxid: user.user_id, token });
      await other.stop();
      assert.equal((await onBind(forged)).status, 200);
      assert.equal(await membership(roomId, user.user_id), undefined, 'forged: no invite');
    });

    it('joins with third_party_signed, signed with the ephemeral key, and refuses a proof for someone else', async () => {
      const { roomId, token } = await invitedUnbound('erin@example.org');
      const erin = await register();
      const mallory = await register();
      const proof = fake.sign({ mxid: erin.user_id, sender: alice.user_id, token }, 'ephemeral');
      const stolen = await server.api.post(`/v3/join/${enc(roomId)}`, { third_party_signed: proof }, { token: mallory.access_token });
      assert.equal(stolen.status, 403);
      assert.equal(await membership(roomId, mallory.user_id), undefined);
      const joined = await server.api.post(`/v3/join/${enc(roomId)}`, { third_party_signed: proof }, { token: erin.access_token });
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
      assert.equal((await membership(roomId, erin.user_id))?.membership, 'join');
    });

    it('refuses an identity server the admin does not trust, a non-member and a member without the invite level, without asking the identity server', async () => {
      const roomId = await newRoom();
      const untrusted = await inviteByEmail(roomId, 'x@example.org', alice, 'id.example.com');
      assert.equal(untrusted.status, 400);
      assert.equal((untrusted.body as { errcode: string }).errcode, 'M_SERVER_NOT_TRUSTED');
      const outsider = await register();
      const lookups = fake.lookups.length;
      const refused = await inviteByEmail(roomId, 'x@example.org', outsider);
      assert.equal(refused.status, 403);
      assert.equal(fake.lookups.length, lookups);
      // A member without the invite level.
      const strict = await newRoom({ preset: 'public_chat', power_level_content_override: { invite: 50 } });
      assert.equal((await server.api.post(`/v3/join/${enc(strict)}`, {}, { token: outsider.access_token })).status, 200);
      const stored = fake.storedInvites.length;
      const weak = await inviteByEmail(strict, 'x@example.org', outsider);
      assert.equal(weak.status, 403);
      assert.equal(fake.lookups.length, lookups);
      assert.equal(fake.storedInvites.length, stored);
      const missing = await server.api.post(`/v3/rooms/${enc(roomId)}/invite`, { medium: 'email', address: 'x@example.org' }, { token: alice.access_token });
      assert.equal(missing.status, 400);
    });
  });
}
