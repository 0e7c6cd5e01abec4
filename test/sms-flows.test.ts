import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as sdk from 'matrix-js-sdk';
import { outboxSettled } from './helpers/outbox.js';
import { HTTP_ENGINES } from './helpers/server.js';
import { SmtpSink } from './helpers/smtp.js';
import { clientSecret, nextSms, smsCode, startSmsEnv, type SmsEnv } from './helpers/sms.js';
import { rejection, SdkClients } from './helpers/sdk.js';

const PW = 'sms-flow-password-1';
const NEW_PW = 'sms-flow-password-2';
const MSISDN_STAGE = 'm.login.msisdn';

type UiaBody = { session: string; flows: { stages: string[] }[]; completed?: string[] };

for (const engine of HTTP_ENGINES) {
  describe(`phone number flows end to end with matrix-js-sdk (${engine})`, () => {
    let env: SmsEnv;
    const clients = new SdkClients(() => env.server.url);
    const client = clients.create;
    before(async () => {
      env = await startSmsEnv(engine, {
        enable_registration_without_verification: false,
        registrations_require_3pid: ['msisdn'],
        enable_msisdn_password_reset: true,
        sms: { app_name: 'Myelin Test' },
      });
    });
    after(async () => {
      clients.stopAll();
      await env.close();
    });

    /** Requests a registration code, submits it, and registers with m.login.msisdn. */
    async function registerWithPhone(username: string, country: string, phone: string, e164: string) {
      const anon = client();
      const cs = clientSecret();
      const skip = env.twilio.messages.length;
      const { sid, submit_url } = await anon.requestRegisterMsisdnToken(country, phone, cs, 1);
      const sms = await nextSms(env.twilio, e164, skip);
      await anon.submitMsisdnTokenOtherUrl(submit_url!, sid, cs, smsCode(sms));
      const first = await rejection(() => anon.registerRequest({ username, password: PW }));
      const session = (first.data as UiaBody).session;
      return anon.registerRequest({ username, password: PW, auth: { type: MSISDN_STAGE, session, threepid_creds: { sid, client_secret: cs } } as sdk.AuthDict });
    }

    it('registers with m.login.msisdn: requestRegisterMsisdnToken, the SMS code via submitMsisdnTokenOtherUrl, registerRequest', async () => {
      const anon = client();
      const cs = clientSecret();
      const skip = env.twilio.messages.length;
      const res = await anon.requestRegisterMsisdnToken('DE', '01512 3456789', cs, 1);
      assert.equal(res.msisdn, '4915123456789');
      assert.equal(res.intl_fmt, '+49 1512 3456789');
      assert.equal(res.submit_url, `${env.server.url}/_matrix/client/unstable/registration/msisdn/submit_token`);

      // The SMS went through Twilio's API: To in E.164, our sender, the registration template.
      const sms = await nextSms(env.twilio, '+4915123456789', skip);
      assert.equal(sms.from, '+15005550006');
      assert.match(sms.body, /^\d{6} is your Myelin Test verification code\.$/);

      // Registration offers only the msisdn flow (registrations_require_3pid: [msisdn]).
      const first = await rejection(() => anon.registerRequest({ username: 'phonereg', password: PW }));
      assert.equal(first.httpStatus, 401);
      const uia = first.data as UiaBody;
      assert.deepEqual(uia.flows, [{ stages: [MSISDN_STAGE] }]);
      const auth = { type: MSISDN_STAGE, session: uia.session, threepid_creds: { sid: res.sid, client_secret: cs } } as sdk.AuthDict;

      // Not validated yet: 401 with the UIA body, nothing completed, so the client can poll.
      const pending = await rejection(() => anon.registerRequest({ username: 'phonereg', password: PW, auth }));
      assert.equal(pending.httpStatus, 401);
      assert.deepEqual((pending.data as UiaBody).completed, []);

      const submitted = await anon.submitMsisdnTokenOtherUrl(res.submit_url!, res.sid, cs, smsCode(sms));
      assert.equal(submitted.success, true);
      const reg = await anon.registerRequest({ username: 'phonereg', password: PW, auth });
      assert.equal(reg.user_id, '@phonereg:test.local');

      const me = client({ accessToken: reg.access_token, userId: reg.user_id });
      const { threepids } = await me.getThreePids();
      assert.deepEqual(
        threepids.map((t) => [t.medium, t.address]),
        [['msisdn', '4915123456789']],
      );

      // The same validated session cannot register a second account.
      const second = await rejection(() => anon.registerRequest({ username: 'phonereg2', password: PW }));
      const replay = await rejection(() =>
        anon.registerRequest({
          username: 'phonereg2',
          password: PW,
          auth: { type: MSISDN_STAGE, session: (second.data as UiaBody).session, threepid_creds: { sid: res.sid, client_secret: cs } } as sdk.AuthDict,
        }),
      );
      assert.equal(replay.httpStatus, 401);
      assert.equal(replay.errcode, 'M_THREEPID_AUTH_FAILED');

      // And the number cannot be registered again.
      const inUse = await rejection(() => anon.requestRegisterMsisdnToken('DE', '+4915123456789', clientSecret(), 1));
      assert.equal(inUse.httpStatus, 400);
      assert.equal(inUse.errcode, 'M_THREEPID_IN_USE');
    });

    it('logs in with m.id.phone (national and international input) and m.id.thirdparty medium msisdn', async () => {
      const reg = await registerWithPhone('phonelogin', 'FR', '06 12 34 56 78', '+33612345678');
      for (const identifier of [
        { type: 'm.id.phone', country: 'FR', phone: '06 12 34 56 78' },
        { type: 'm.id.phone', country: 'fr', phone: '+33 6 12 34 56 78' },
        { type: 'm.id.phone', country: 'US', phone: '+33612345678' },
        { type: 'm.id.thirdparty', medium: 'msisdn', address: '33612345678' },
        { type: 'm.id.thirdparty', medium: 'msisdn', address: '+33612345678' },
      ]) {
        const login = await client().loginRequest({ type: 'm.login.password', identifier, password: PW } as sdk.LoginRequest);
        assert.equal(login.user_id, reg.user_id, JSON.stringify(identifier));
      }
      // A number nobody holds fails like a wrong password.
      const nobody = await rejection(() =>
        client().loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.phone', country: 'FR', phone: '06 12 34 56 79' }, password: PW } as sdk.LoginRequest),
      );
      assert.equal(nobody.httpStatus, 403);
      assert.equal(nobody.errcode, 'M_FORBIDDEN');
      // A number that cannot be parsed is bad input.
      const invalid = await env.server.api.post('/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.phone', country: 'FR', phone: '12' }, password: PW });
      assert.equal(invalid.status, 400);
      assert.equal(invalid.body.errcode, 'M_INVALID_PARAM');
    });

    it('adds a number to an account with requestAdd3pidMsisdnToken and addThreePidOnly', async () => {
      const reg = await registerWithPhone('phoneadder', 'DE', '0151 11112222', '+4915111112222');
      const me = client({ accessToken: reg.access_token, userId: reg.user_id });
      const cs = clientSecret();
      const skip = env.twilio.messages.length;
      const { sid, submit_url, msisdn } = await me.requestAdd3pidMsisdnToken('US', '(415) 555-2671', cs, 1);
      assert.equal(msisdn, '14155552671');
      assert.equal(submit_url, `${env.server.url}/_matrix/client/unstable/add_threepid/msisdn/submit_token`);
      const sms = await nextSms(env.twilio, '+14155552671', skip);
      assert.match(sms.body, /code to add this phone number/);
      await me.submitMsisdnTokenOtherUrl(submit_url!, sid, cs, smsCode(sms));
      const challenge = await rejection(() => me.addThreePidOnly({ sid, client_secret: cs }));
      assert.equal(challenge.httpStatus, 401);
      await me.addThreePidOnly({
        sid,
        client_secret: cs,
        auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: reg.user_id }, password: PW, session: (challenge.data as UiaBody).session } as sdk.IAddThreePidOnlyBody["auth"],
      });
      const { threepids } = await me.getThreePids();
      assert.deepEqual(threepids.map((t) => `${t.medium}:${t.address}`).sort(), ['msisdn:14155552671', 'msisdn:4915111112222']);
      const login = await client().loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.phone', country: 'US', phone: '415-555-2671' }, password: PW } as sdk.LoginRequest);
      assert.equal(login.user_id, reg.user_id);

      // Another account cannot add the same number.
      const other = await registerWithPhone('phoneadder2', 'DE', '0151 11113333', '+4915111113333');
      const them = client({ accessToken: other.access_token, userId: other.user_id });
      const taken = await rejection(() => them.requestAdd3pidMsisdnToken('US', '+1 415 555 2671', clientSecret(), 1));
      assert.equal(taken.errcode, 'M_THREEPID_IN_USE');

      // Deleting it frees the number for login.
      await me.deleteThreePid('msisdn', '14155552671');
      const gone = await rejection(() =>
        client().loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.phone', country: 'US', phone: '415-555-2671' }, password: PW } as sdk.LoginRequest),
      );
      assert.equal(gone.errcode, 'M_FORBIDDEN');
    });

    it('resets a password by SMS when enable_msisdn_password_reset is on', async () => {
      const reg = await registerWithPhone('phonereset', 'DE', '0151 22223333', '+4915122223333');
      const anon = client();
      // The reset UIA offers the msisdn stage.
      const offered = await env.server.api.post('/v3/account/password', { new_password: NEW_PW });
      assert.equal(offered.status, 401);
      assert.deepEqual((offered.body as unknown as UiaBody).flows, [{ stages: [MSISDN_STAGE] }]);

      const cs = clientSecret();
      const skip = env.twilio.messages.length;
      const { sid, submit_url } = await anon.requestPasswordMsisdnToken('DE', '+49 151 22223333', cs, 1, 'https://app.example.org/done');
      const sms = await nextSms(env.twilio, '+4915122223333', skip);
      assert.match(sms.body, /password reset code/);
      const auth = { type: MSISDN_STAGE, threepid_creds: { sid, client_secret: cs } } as sdk.AuthDict;
      const pending = await rejection(() => anon.setPassword(auth, NEW_PW));
      assert.equal(pending.httpStatus, 401);
      const session = (pending.data as UiaBody).session;
      await anon.submitMsisdnTokenOtherUrl(submit_url!, sid, cs, smsCode(sms));
      await anon.setPassword({ ...auth, session } as sdk.AuthDict, NEW_PW);
      // logout_devices defaults to true.
      assert.equal((await env.server.api.get('/v3/account/whoami', { token: reg.access_token })).status, 401);
      const login = await client().loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.phone', country: 'DE', phone: '0151 22223333' }, password: NEW_PW } as sdk.LoginRequest);
      assert.equal(login.user_id, reg.user_id);
      const replay = await rejection(() => anon.setPassword(auth, 'third-password-3'));
      assert.equal(replay.errcode, 'M_THREEPID_AUTH_FAILED');
    });

    it('never sends a reset SMS to a number no account holds', async () => {
      const skip = env.twilio.messages.length;
      const unknown = await rejection(() => client().requestPasswordMsisdnToken('DE', '0151 99998888', clientSecret(), 1, 'https://app.example.org/'));
      assert.equal(unknown.httpStatus, 400);
      assert.equal(unknown.errcode, 'M_THREEPID_NOT_FOUND');
      await outboxSettled(env.server, ['sms']);
      assert.equal(env.twilio.messages.slice(skip).length, 0);
    });
  });

  describe(`phone numbers with request_token_inhibit_3pid_errors (${engine})`, () => {
    let env: SmsEnv;
    before(async () => {
      env = await startSmsEnv(engine, { request_token_inhibit_3pid_errors: true, enable_msisdn_password_reset: true });
    });
    after(async () => env.close());

    it('answers a reset request for an unknown number like any other, but sends no SMS', async () => {
      const hits = env.twilio.hits;
      const res = await env.server.api.post('/v3/account/password/msisdn/requestToken', {
        client_secret: clientSecret(),
        country: 'DE',
        phone_number: '0151 77776666',
        send_attempt: 1,
      });
      assert.equal(res.status, 200);
      assert.equal(typeof res.body.sid, 'string');
      assert.equal(res.body.msisdn, '4915177776666');
      // A registration request for a fresh number on the same server does send, so the worker is alive.
      const reg = await env.server.api.post('/v3/register/msisdn/requestToken', { client_secret: clientSecret(), country: 'DE', phone_number: '0151 77775555', send_attempt: 1 });
      assert.equal(reg.status, 200);
      await nextSms(env.twilio, '+4915177775555', 0);
      assert.equal(env.twilio.hits, hits + 1);
      assert.ok(env.twilio.messages.every((m) => m.to !== '+4915177776666'));
    });

    it('answers a registration request for a number in use like any other, and sends no SMS to its owner', async () => {
      const api = env.server.api;
      const user = await api.register('inhibited', PW);
      const cs = clientSecret();
      const skip = env.twilio.messages.length;
      const add = await api.post('/v3/account/3pid/msisdn/requestToken', { client_secret: cs, country: 'FR', phone_number: '07 51 22 33 44', send_attempt: 1 });
      assert.equal(add.status, 200);
      const code = smsCode(await nextSms(env.twilio, '+33751223344', skip));
      assert.equal((await api.post(new URL(add.body.submit_url as string).pathname, { sid: add.body.sid, client_secret: cs, token: code })).status, 200);
      const first = await api.post('/v3/account/3pid/add', { sid: add.body.sid, client_secret: cs }, { token: user.access_token });
      const added = await api.post(
        '/v3/account/3pid/add',
        { sid: add.body.sid, client_secret: cs, auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: user.user_id }, password: PW, session: first.body.session } },
        { token: user.access_token },
      );
      assert.equal(added.status, 200, JSON.stringify(added.body));
      const hits = env.twilio.hits;
      for (const path of ['/v3/register/msisdn/requestToken', '/v3/account/3pid/msisdn/requestToken']) {
        const res = await api.post(path, { client_secret: clientSecret(), country: 'FR', phone_number: '+33 7 51 22 33 44', send_attempt: 1 });
        assert.equal(res.status, 200, path);
        assert.equal(typeof res.body.sid, 'string');
      }
      await outboxSettled(env.server, ['sms']);
      assert.equal(env.twilio.hits, hits);
    });
  });

  describe(`phone numbers next to email, password reset by SMS off (${engine})`, () => {
    let env: SmsEnv;
    let smtp: SmtpSink;
    before(async () => {
      smtp = await SmtpSink.started();
      env = await startSmsEnv(engine, {
        email: smtp.emailConfig({}),
        enable_registration_without_verification: false,
        registrations_require_3pid: ['email', 'msisdn'],
      });
    });
    after(async () => {
      await env.close();
      await smtp.stop();
    });

    it('requires both email and phone at registration when registrations_require_3pid names both', async () => {
      const res = await env.server.api.post('/v3/register', { username: 'both', password: PW });
      assert.equal(res.status, 401);
      assert.deepEqual(res.body.flows, [{ stages: ['m.login.email.identity', MSISDN_STAGE] }]);
    });

    it('refuses to send a reset SMS (M_THREEPID_MEDIUM_NOT_SUPPORTED) and the reset UIA does not offer m.login.msisdn', async () => {
      const hits = env.twilio.hits;
      const res = await env.server.api.post('/v3/account/password/msisdn/requestToken', {
        client_secret: clientSecret(),
        country: 'DE',
        phone_number: '0151 12121212',
        send_attempt: 1,
      });
      assert.equal(res.status, 400);
      assert.equal(res.body.errcode, 'M_THREEPID_MEDIUM_NOT_SUPPORTED');
      const uia = await env.server.api.post('/v3/account/password', { new_password: NEW_PW });
      assert.equal(uia.status, 401);
      assert.deepEqual(uia.body.flows, [{ stages: ['m.login.email.identity'] }]);
      const forced = await env.server.api.post('/v3/account/password', {
        new_password: NEW_PW,
        auth: { type: MSISDN_STAGE, session: uia.body.session, threepid_creds: { sid: 'abc', client_secret: 'def' } },
      });
      assert.equal(forced.status, 401);
      assert.equal(forced.body.errcode, 'M_UNRECOGNIZED');
      assert.equal(env.twilio.hits, hits);
    });
  });
}
