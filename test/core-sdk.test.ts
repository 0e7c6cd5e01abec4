import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as sdk from 'matrix-js-sdk';
import { HTTP_ENGINES, startTestServer, type TestServer } from './helpers/server.js';
import { rejection, SdkClients } from './helpers/sdk.js';

const PW = 'sdk-password-1';
const NEW_PW = 'sdk-password-2';

for (const engine of HTTP_ENGINES) {
  describe(`matrix-js-sdk as a real client (${engine})`, () => {
    let server: TestServer;
    const clients = new SdkClients(() => server.url);
    const client = clients.create;
    before(async () => {
      server = await startTestServer(engine);
    });
    after(async () => {
      clients.stopAll();
      await server.close();
    });

    it('registers, logs in, changes the password, logs out and deactivates', async () => {
      const anon = client();
      assert.equal(await anon.isUsernameAvailable('sdkuser'), true);
      const versions = await anon.getVersions();
      assert.ok(versions.versions.includes('v1.1'));
      assert.deepEqual((await anon.loginFlows()).flows, [{ type: 'm.login.password' }]);

      // Register: the first request answers with the UIA flows, the second completes m.login.dummy.
      const challenge = await rejection(() => anon.registerRequest({ username: 'SdkUser', password: PW, initial_device_display_name: 'SDK' }));
      assert.equal(challenge.httpStatus, 401);
      const uia = challenge.data as unknown as { session: string; flows: { stages: string[] }[] };
      assert.deepEqual(uia.flows, [{ stages: ['m.login.dummy'] }]);
      const reg = await anon.registerRequest({
        username: 'SdkUser',
        password: PW,
        initial_device_display_name: 'SDK',
        auth: { type: sdk.AuthType.Dummy, session: uia.session },
      });
      assert.equal(reg.user_id, '@sdkuser:test.local');
      assert.ok(reg.access_token);
      const regWho = await server.api.get('/v3/account/whoami', { token: reg.access_token });
      assert.equal(regWho.body.user_id, '@sdkuser:test.local');
      assert.equal(regWho.body.device_id, reg.device_id);
      assert.equal(await anon.isUsernameAvailable('sdkuser'), false);

      // Log in (loginRequest and the older loginWithPassword) and ask who we are.
      const login = await anon.loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'sdkuser' }, password: PW });
      assert.equal(login.user_id, '@sdkuser:test.local');
      const legacy = await client().loginWithPassword('@sdkuser:test.local', PW);
      assert.equal(legacy.user_id, '@sdkuser:test.local');
      const bad = await rejection(() => client().loginWithPassword('sdkuser', 'wrong'));
      assert.equal(bad.httpStatus, 403);
      assert.equal(bad.errcode, 'M_FORBIDDEN');

      const me = client({ accessToken: login.access_token, userId: login.user_id, deviceId: login.device_id });
      const who = await me.whoami();
      assert.equal(who.user_id, '@sdkuser:test.local');
      assert.equal(who.device_id, login.device_id);
      const { devices } = await me.getDevices();
      assert.deepEqual(devices.map((d) => d.device_id).sort(), [reg.device_id, login.device_id, legacy.device_id].sort());
      await me.setDisplayName('SDK User');
      assert.equal((await server.api.get('/v3/profile/@sdkuser:test.local/displayname')).body.displayname, 'SDK User');
      assert.equal((await me.getProfileInfo('@sdkuser:test.local')).displayname, 'SDK User');
      const caps = await me.getCapabilities();
      assert.equal(caps['m.change_password']?.enabled, true);

      // Change the password behind UIA; other devices are logged out.
      const pwChallenge = await rejection(() => me.setPassword({} as sdk.AuthDict, NEW_PW));
      assert.equal(pwChallenge.httpStatus, 401);
      const pwSession = (pwChallenge.data as unknown as { session: string }).session;
      await me.setPassword(
        { type: sdk.AuthType.Password, session: pwSession, identifier: { type: 'm.id.user', user: '@sdkuser:test.local' }, password: PW },
        NEW_PW,
      );
      assert.equal((await server.api.get('/v3/account/whoami', { token: login.access_token })).status, 200);
      for (const token of [reg.access_token!, legacy.access_token]) {
        const res = await server.api.get('/v3/account/whoami', { token });
        assert.equal(res.body.errcode, 'M_UNKNOWN_TOKEN');
      }
      const oldPw = await server.api.post('/v3/login', { type: 'm.login.password', user: 'sdkuser', password: PW });
      assert.equal(oldPw.status, 403);
      await server.api.login('sdkuser', NEW_PW);

      // Log out.
      await me.logout();
      const dead = await server.api.get('/v3/account/whoami', { token: login.access_token });
      assert.equal(dead.body.errcode, 'M_UNKNOWN_TOKEN');
      const deadSdk = await rejection(() => me.whoami());
      assert.equal(deadSdk.errcode, 'M_UNKNOWN_TOKEN');

      // Deactivate from a fresh login.
      const again = await anon.loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'sdkuser' }, password: NEW_PW });
      const leaving = client({ accessToken: again.access_token, userId: again.user_id, deviceId: again.device_id });
      const deChallenge = await rejection(() => leaving.deactivateAccount());
      assert.equal(deChallenge.httpStatus, 401);
      const wrong = await rejection(() =>
        leaving.deactivateAccount({ type: sdk.AuthType.Password, session: (deChallenge.data as unknown as { session: string }).session, user: 'sdkuser', password: PW }),
      );
      assert.equal(wrong.httpStatus, 401);
      assert.equal(wrong.errcode, 'M_FORBIDDEN');
      const result = await leaving.deactivateAccount(
        { type: sdk.AuthType.Password, session: (deChallenge.data as unknown as { session: string }).session, user: 'sdkuser', password: NEW_PW },
        false,
      );
      assert.equal(result.id_server_unbind_result, 'success');
      assert.equal((await server.api.get('/v3/account/whoami', { token: again.access_token })).body.errcode, 'M_UNKNOWN_TOKEN');
      const afterwards = await rejection(() => anon.loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'sdkuser' }, password: NEW_PW }));
      assert.equal(afterwards.errcode, 'M_USER_DEACTIVATED');
    });

    it('registers in one step with client.register and m.login.dummy, and refreshes tokens', async () => {
      const anon = client();
      const reg = await anon.register('oneshot', PW, null, { type: 'm.login.dummy' });
      assert.equal(reg.user_id, '@oneshot:test.local');
      assert.equal((await server.api.get('/v3/account/whoami', { token: reg.access_token })).status, 200);

      const login = await anon.loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'oneshot' }, password: PW, refresh_token: true });
      assert.ok(login.refresh_token);
      const refreshed = await anon.refreshToken(login.refresh_token!);
      assert.notEqual(refreshed.access_token, login.access_token);
      assert.equal((await server.api.get('/v3/account/whoami', { token: refreshed.access_token })).body.user_id, '@oneshot:test.local');
      const reused = await rejection(() => anon.refreshToken(login.refresh_token!));
      assert.equal(reused.errcode, 'M_UNKNOWN_TOKEN');
    });
  });
}
