import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as sdk from 'matrix-js-sdk';
import { HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';
import { prepared, SdkClients, waitFor } from './helpers/sdk.js';

for (const engine of HTTP_ENGINES) {
  describe(`matrix-js-sdk syncs against Myelin (${engine})`, () => {
    let server: TestServer;
    const clients = new SdkClients(() => server.url);
    const client = clients.create;
    before(async () => {
      server = await startTestServer(engine);
      await server.api.register('alice');
    });
    after(async () => {
      clients.stopAll();
      await server.close();
    });

    it('logs in, reaches PREPARED, uploads keys, syncs account data and to-device messages, and stops', async () => {
      const anon = client();
      const loginA = await anon.loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'alice' }, password: 'correct horse battery' });
      const loginB = await anon.loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'alice' }, password: 'correct horse battery' });
      const a = client({ userId: loginA.user_id, accessToken: loginA.access_token, deviceId: loginA.device_id });
      const b = client({ userId: loginB.user_id, accessToken: loginB.access_token, deviceId: loginB.device_id });

      const readyA = prepared(a);
      const readyB = prepared(b);
      await a.startClient({ initialSyncLimit: 1 });
      await b.startClient({ initialSyncLimit: 1 });
      await Promise.all([readyA, readyB]);
      // The initial sync delivered the server-default push rules.
      assert.ok(a.pushRules?.global.override?.some((r) => r.rule_id === '.m.rule.master'));

      // Device keys (crypto is off in this client, so the upload is done by hand).
      const deviceKeys = {
        user_id: loginA.user_id,
        device_id: loginA.device_id,
        algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
        keys: { [`curve25519:${loginA.device_id}`]: 'curvekeyA', [`ed25519:${loginA.device_id}`]: 'edkeyA' },
        signatures: { [loginA.user_id]: { [`ed25519:${loginA.device_id}`]: 'sigA' } },
      };
      const uploaded = await a.uploadKeysRequest({
        device_keys: deviceKeys,
        one_time_keys: { 'signed_curve25519:AAAAAQ': { key: 'otk1', signatures: { [loginA.user_id]: { [`ed25519:${loginA.device_id}`]: 'sig1' } } } },
      } as never);
      assert.equal(uploaded.one_time_key_counts.signed_curve25519, 1);
      const queried = await b.http.authedRequest<{ device_keys: Record<string, Record<string, { keys: Record<string, string> }>> }>(
        sdk.Method.Post,
        '/keys/query',
        undefined,
        { device_keys: { [loginA.user_id]: [] } },
      );
      assert.equal(queried.device_keys[loginA.user_id]![loginA.device_id]!.keys[`ed25519:${loginA.device_id}`], 'edkeyA');

      // Account data put by one device reaches the sync of both.
      const seenByA = waitFor<sdk.MatrixEvent>(
        (h) => {
          a.on(sdk.ClientEvent.AccountData, h);
          return () => a.off(sdk.ClientEvent.AccountData, h);
        },
        (e) => e.getType() === 'org.example.settings',
        'account data on device A',
      );
      const seenByB = waitFor<sdk.MatrixEvent>(
        (h) => {
          b.on(sdk.ClientEvent.AccountData, h);
          return () => b.off(sdk.ClientEvent.AccountData, h);
        },
        (e) => e.getType() === 'org.example.settings',
        'account data on device B',
      );
      await a.setAccountData('org.example.settings' as never, { theme: 'dark' } as never);
      assert.deepEqual((await seenByA).getContent(), { theme: 'dark' });
      assert.deepEqual((await seenByB).getContent(), { theme: 'dark' });
      assert.deepEqual(a.getAccountData('org.example.settings' as never)?.getContent(), { theme: 'dark' });

      // A to-device message from device A arrives on device B, once.
      const received = waitFor<sdk.MatrixEvent>(
        (h) => {
          b.on(sdk.ClientEvent.ToDeviceEvent, h);
          return () => b.off(sdk.ClientEvent.ToDeviceEvent, h);
        },
        (e) => e.getType() === 'org.example.ping',
        'the to-device message on device B',
      );
      await a.sendToDevice('org.example.ping', new Map([[loginA.user_id, new Map([[loginB.device_id, { n: 1 }]])]]));
      const message = await received;
      assert.deepEqual(message.getContent(), { n: 1 });
      assert.equal(message.getSender(), loginA.user_id);

      a.stopClient();
      b.stopClient();
      assert.equal(a.getSyncState(), null);
    });
  });
}
