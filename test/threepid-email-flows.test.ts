import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as sdk from 'matrix-js-sdk';
import { HTTP_ENGINES } from './helpers/server.js';
import { codeOf, followLink, linkOf, secret, startEmailEnv, type EmailEnv } from './helpers/threepid-email.js';
import { rejection, SdkClients } from './helpers/sdk.js';
import { until } from './helpers/until.js';

const PW = 'email-flow-password-1';
const NEW_PW = 'email-flow-password-2';
const EMAIL_STAGE = 'm.login.email.identity';

for (const engine of HTTP_ENGINES) {
  describe(`email validation flows end to end with matrix-js-sdk (${engine})`, () => {
    let env: EmailEnv;
    const clients = new SdkClients(() => env.server.url);
    const client = clients.create;
    before(async () => {
      env = await startEmailEnv(engine, { enable_registration_without_verification: false });
    });
    after(async () => {
      clients.stopAll();
      await env.close();
    });

    it('registers with m.login.email.identity through InteractiveAuth, the link confirmed in a browser', async () => {
      const anon = client();
      const address = 'Reg.User@Example.ORG';
      const canonical = 'reg.user@example.org';
      const states: string[] = [];
      let requested = 0;
      const ia = new sdk.InteractiveAuth<sdk.RegisterResponse>({
        matrixClient: anon,
        inputs: { emailAddress: address },
        doRequest: (auth) => anon.registerRequest({ username: 'emailreg', password: PW, auth: auth ?? undefined }),
        stateUpdated: (stage) => states.push(stage),
        requestEmailToken: async (email, clientSecret, attempt) => {
          requested++;
          return anon.requestRegisterEmailToken(email, clientSecret, attempt);
        },
      });
      const done = ia.attemptAuth();
      const mail = await env.smtp.waitFor((m) => m.envelopeTo.includes(canonical));
      assert.equal(requested, 1);
      assert.ok(states.includes(EMAIL_STAGE));
      // Polling before the link is confirmed keeps the flow open.
      await ia.poll();
      const page = await followLink(linkOf(mail));
      assert.equal(page.status, 200);
      assert.match(page.html, /confirmed/i);
      assert.equal(page.headers.get('cache-control'), 'no-store');
      assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
      let result: sdk.RegisterResponse | undefined;
      void done.then((r) => (result = r));
      await until(async () => {
        await ia.poll();
        return result !== undefined;
      }, 'the interactive auth to finish', 1000).catch(() => undefined);
      const reg = await done;
      assert.equal(reg.user_id, '@emailreg:test.local');
      const me = client({ accessToken: reg.access_token, userId: reg.user_id });
      const { threepids } = await me.getThreePids();
      assert.deepEqual(
        threepids.map((t) => [t.medium, t.address]),
        [['email', canonical]],
      );

      // Login by email: m.id.thirdparty and the legacy top-level medium/address.
      const byId = await client().loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.thirdparty', medium: 'email', address: 'REG.USER@example.org' }, password: PW });
      assert.equal(byId.user_id, '@emailreg:test.local');
      const legacy = await env.server.api.post<{ user_id: string }>('/v3/login', { type: 'm.login.password', medium: 'email', address: canonical, password: PW });
      assert.equal(legacy.status, 200);
      assert.equal(legacy.body.user_id, '@emailreg:test.local');
    });

    it('resets a password with requestPasswordEmailToken, the code via submit_url, and setPassword', async () => {
      const anon = client();
      const reg = await registerWithEmail(env, anon, 'resetme', 'reset.me@example.org');
      const other = await client().loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'resetme' }, password: PW });
      const cs = secret();
      const { sid, submit_url } = await anon.requestPasswordEmailToken('Reset.Me@example.org', cs, 1);
      assert.ok(submit_url);
      const mail = await env.smtp.waitFor((m) => m.envelopeTo.includes('reset.me@example.org') && /password/i.test(m.subject));
      const auth = { type: EMAIL_STAGE, threepid_creds: { sid, client_secret: cs } };
      // Not validated yet: 401 with the UIA body, so the client can poll.
      const pending = await rejection(() => anon.setPassword(auth, NEW_PW));
      assert.equal(pending.httpStatus, 401);
      const session = (pending.data as { session: string }).session;
      const submitted = await anon.submitMsisdnTokenOtherUrl(submit_url, sid, cs, codeOf(mail));
      assert.equal(submitted.success, true);
      await anon.setPassword({ ...auth, session }, NEW_PW);
      // logout_devices defaults to true: every session of the account is gone.
      for (const token of [reg.access_token, other.access_token]) {
        const who = await env.server.api.get('/v3/account/whoami', { token });
        assert.equal(who.status, 401);
      }
      await client().loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'resetme' }, password: NEW_PW });
      // The session cannot reset the password a second time.
      const replay = await rejection(() => anon.setPassword(auth, 'third-password-3'));
      assert.equal(replay.httpStatus, 401);
      assert.equal(replay.errcode, 'M_THREEPID_AUTH_FAILED');
    });

    it('adds an address with requestAdd3pidEmailToken and addThreePidOnly', async () => {
      const anon = client();
      const reg = await registerWithEmail(env, anon, 'adder', 'adder@example.org');
      const me = client({ accessToken: reg.access_token, userId: reg.user_id });
      const cs = secret();
      const { sid } = await me.requestAdd3pidEmailToken('Second@Example.org', cs, 1);
      const mail = await env.smtp.waitFor((m) => m.envelopeTo.includes('second@example.org'));
      const page = await followLink(linkOf(mail));
      assert.equal(page.status, 200);
      const challenge = await rejection(() => me.addThreePidOnly({ sid, client_secret: cs }));
      assert.equal(challenge.httpStatus, 401);
      const session = (challenge.data as { session: string }).session;
      await me.addThreePidOnly({
        sid,
        client_secret: cs,
        auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: reg.user_id }, password: PW, session } as sdk.IAddThreePidOnlyBody['auth'],
      });
      const { threepids } = await me.getThreePids();
      assert.deepEqual(threepids.map((t) => t.address).sort(), ['adder@example.org', 'second@example.org']);
      const login = await client().loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.thirdparty', medium: 'email', address: 'second@example.org' }, password: PW });
      assert.equal(login.user_id, reg.user_id);
    });
  });
}

/** Registers through the email flow by hand (request, link, UIA), for tests that need an account with an address. */
async function registerWithEmail(env: EmailEnv, anon: sdk.MatrixClient, username: string, address: string) {
  const cs = secret();
  const { sid } = await anon.requestRegisterEmailToken(address, cs, 1);
  const mail = await env.smtp.waitFor((m) => m.envelopeTo.includes(address));
  await followLink(linkOf(mail));
  const first = await rejection(() => anon.registerRequest({ username, password: PW }));
  const session = (first.data as { session: string }).session;
  return anon.registerRequest({ username, password: PW, auth: { type: EMAIL_STAGE, session, threepid_creds: { sid, client_secret: cs } } });
}
