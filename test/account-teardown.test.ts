import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ApiResponse } from './helpers/api.js';
import { ENGINES, startTestServer, type TestServer } from './helpers/server.js';

type Body = Record<string, unknown>;
type Session = { user_id: string; access_token: string; device_id: string };
type Claimed = { one_time_keys: Record<string, Record<string, Record<string, { key: string }>>> };
type Queried = { device_keys: Record<string, Record<string, unknown>> };
const PW = 'pw-teardown-1234';

// Account teardown goes the one way devices go (DeviceService.deleteDevices), so every area's
// clean-up runs for the devices that end: keys, queued to-device messages, a device-list change.
for (const engine of ENGINES) {
  // Both engines: teardown is one transaction, rolled back whole when it fails.
  describe(`account teardown through the device-deletion path (${engine})`, () => {
    let server: TestServer;
    let peer: Session;
    before(async () => {
      server = await startTestServer(engine);
      peer = await server.api.register('teardown-peer', PW);
    });
    after(async () => server.close());

    async function withPassword(path: string, body: Body, token: string): Promise<ApiResponse> {
      const first = await server.api.post(path, body, { token });
      assert.equal(first.status, 401, JSON.stringify(first.body));
      return server.api.post(path, { ...body, auth: { type: 'm.login.password', session: first.body.session, password: PW } }, { token });
    }

    /** Uploads device keys and two one-time keys for the session's device. */
    async function uploadKeys(s: Session): Promise<void> {
      const res = await server.api.post(
        '/v3/keys/upload',
        {
          device_keys: {
            user_id: s.user_id,
            device_id: s.device_id,
            algorithms: ['m.olm.v1.curve25519-aes-sha2'],
            keys: { [`curve25519:${s.device_id}`]: 'c', [`ed25519:${s.device_id}`]: 'e' },
            signatures: { [s.user_id]: { [`ed25519:${s.device_id}`]: 's' } },
          },
          one_time_keys: { 'signed_curve25519:k1': { key: `one-${s.device_id}`, signatures: {} }, 'signed_curve25519:k2': { key: `two-${s.device_id}`, signatures: {} } },
        },
        { token: s.access_token },
      );
      assert.equal(res.status, 200, JSON.stringify(res.body));
    }

    const query = (userId: string) => server.api.post<Queried>('/v3/keys/query', { device_keys: { [userId]: [] } }, { token: peer.access_token });
    const claim = (userId: string, deviceId: string) =>
      server.api.post<Claimed>('/v3/keys/claim', { one_time_keys: { [userId]: { [deviceId]: 'signed_curve25519' } } }, { token: peer.access_token });

    async function sendToDevice(s: Session, txn: string): Promise<void> {
      const res = await server.api.put(`/v3/sendToDevice/org.example.hi/${txn}`, { messages: { [s.user_id]: { [s.device_id]: { hi: txn } } } }, { token: peer.access_token });
      assert.equal(res.status, 200);
    }

    async function inboxCount(s: Session): Promise<number> {
      const rows = await server.hs.services.store.db.kysely
        .selectFrom('to_device_inbox')
        .select('device_id')
        .where('user_id', '=', s.user_id)
        .where('device_id', '=', s.device_id)
        .execute();
      return rows.length;
    }

    it('deactivation deletes the keys of every device: /keys/query shows none, /keys/claim yields none, a device-list change is written', async () => {
      const a = await server.api.register('teardown-goner', PW);
      const b = await server.api.login('teardown-goner', PW);
      await uploadKeys(a);
      await uploadKeys(b);
      await sendToDevice(b, 'before-deactivation');
      assert.deepEqual(Object.keys((await query(a.user_id)).body.device_keys[a.user_id]!).sort(), [a.device_id, b.device_id].sort());
      assert.equal(await inboxCount(b), 1);
      const streams = server.hs.services.store.streams;
      const before = await streams.head();

      const res = await withPassword('/v3/account/deactivate', {}, a.access_token);
      assert.equal(res.status, 200, JSON.stringify(res.body));

      const queried = await query(a.user_id);
      assert.equal(queried.status, 200);
      assert.deepEqual(queried.body.device_keys[a.user_id] ?? {}, {}, 'no device keys of the deactivated account');
      for (const device of [a.device_id, b.device_id]) {
        const claimed = await claim(a.user_id, device);
        assert.equal(claimed.status, 200);
        assert.deepEqual(claimed.body.one_time_keys[a.user_id] ?? {}, {}, `no one-time key of ${device}`);
      }
      assert.equal(await inboxCount(b), 0, 'the queued to-device message is gone');
      const upto = await streams.head();
      assert.ok(upto > before, 'the deletion advanced the stream');
      const changed = await server.hs.services.store.keys.deviceListChanges(a.user_id, before, upto);
      assert.deepEqual(changed, [a.user_id], "the account's device-list change is stored");
    });

    it('password change with logout_devices: the other devices lose their keys and queued messages, the kept one sees its list change', async () => {
      const keep = await server.api.register('teardown-changer', PW);
      const other = await server.api.login('teardown-changer', PW);
      await uploadKeys(keep);
      await uploadKeys(other);
      await sendToDevice(other, 'before-change');
      assert.equal(await inboxCount(other), 1);
      const since = await server.api.get<{ next_batch: string }>('/v3/sync?timeout=0', { token: keep.access_token });

      const res = await withPassword('/v3/account/password', { new_password: PW, logout_devices: true }, keep.access_token);
      assert.equal(res.status, 200, JSON.stringify(res.body));

      assert.deepEqual(Object.keys((await query(keep.user_id)).body.device_keys[keep.user_id]!), [keep.device_id]);
      assert.deepEqual((await claim(keep.user_id, other.device_id)).body.one_time_keys[keep.user_id] ?? {}, {});
      assert.equal(Object.keys((await claim(keep.user_id, keep.device_id)).body.one_time_keys[keep.user_id]![keep.device_id]!).length, 1, 'the kept device keeps its keys');
      assert.equal(await inboxCount(other), 0);
      const after = await server.api.get<{ next_batch: string }>(`/v3/sync?timeout=0&since=${since.body.next_batch}`, { token: keep.access_token });
      const changes = await server.api.get<{ changed: string[] }>(`/v3/keys/changes?from=${since.body.next_batch}&to=${after.body.next_batch}`, { token: keep.access_token });
      assert.deepEqual(changes.body.changed, [keep.user_id]);
    });

    it('deactivation is one unit of work: when its transaction fails, no device is gone and no change is written', async () => {
      const a = await server.api.register('teardown-kept', PW);
      await uploadKeys(a);
      const { store, accounts } = server.hs.services;
      const before = await store.streams.head();
      // A caller's unit of work that deactivates the account, then fails.
      await assert.rejects(
        store.transaction(async (tx) => {
          await accounts.within(tx).deactivate(a.user_id);
          assert.equal(await tx.devices.get(a.user_id, a.device_id), undefined, 'inside the transaction the device is gone');
          throw new Error('the caller fails after deactivating');
        }),
        /caller fails/,
      );
      assert.equal((await server.api.get('/v3/account/whoami', { token: a.access_token })).status, 200);
      assert.deepEqual(Object.keys((await query(a.user_id)).body.device_keys[a.user_id]!), [a.device_id]);
      assert.equal(await store.streams.head(), before);
    });
  });
}
