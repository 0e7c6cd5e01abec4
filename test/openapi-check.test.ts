import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SchemaError, validateResponse } from './helpers/openapi.js';

// The check every JSON answer of every HTTP test goes through: what it lets pass decides what those tests can catch.
describe('the OpenAPI check of responses', () => {
  it('fails any 5xx, with an errcode or without, on spec routes and on others', async () => {
    for (const [method, path] of [
      ['POST', '/_matrix/client/v3/login'],
      ['GET', '/_matrix/client/v3/account/whoami'],
      ['POST', '/_matrix/client/unstable/registration/email/submit_token'],
      ['GET', '/_matrix/client/v3/no/such/endpoint'],
    ] as const) {
      for (const status of [500, 502, 503]) {
        await assert.rejects(validateResponse(method, path, status, { errcode: 'M_UNKNOWN', error: 'Internal server error' }), SchemaError, `${method} ${path} ${status}`);
        await assert.rejects(validateResponse(method, path, status, {}), SchemaError);
      }
    }
    // Unless a test provokes one on purpose; even then the body is a Matrix error.
    assert.equal(await validateResponse('POST', '/_matrix/client/v3/register', 500, { errcode: 'M_UNKNOWN', error: 'Internal server error' }, { serverError: true }), undefined);
    await assert.rejects(validateResponse('POST', '/_matrix/client/v3/register', 500, 'Internal Server Error', { serverError: true }), SchemaError);
  });

  it('lets a 4xx Matrix error pass where the spec names no such status, but not a 4xx without an errcode', async () => {
    assert.equal(await validateResponse('GET', '/_matrix/client/v3/account/whoami', 429, { errcode: 'M_LIMIT_EXCEEDED', error: 'Too many requests', retry_after_ms: 10 }), '/_matrix/client/v3/account/whoami');
    assert.equal(await validateResponse('GET', '/_matrix/client/v3/no/such/endpoint', 404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' }), undefined);
    await assert.rejects(validateResponse('GET', '/_matrix/client/v3/account/whoami', 418, { error: 'no errcode' }), SchemaError);
    await assert.rejects(validateResponse('GET', '/_matrix/client/v3/no/such/endpoint', 404, { error: 'no errcode' }), SchemaError);
  });

  it('fails a success from a route that neither the spec nor the helper describes', async () => {
    await assert.rejects(validateResponse('GET', '/_matrix/client/v3/no/such/endpoint', 200, { anything: true }), /neither the spec nor/);
    await assert.rejects(validateResponse('POST', '/_synapse/admin/v1/no_such_endpoint/@a:b', 200, {}), /neither the spec nor/);
  });

  it('checks submit_url answers against the identity service shape {success}', async () => {
    for (const flow of ['registration', 'password_reset', 'add_threepid']) {
      for (const medium of ['email', 'msisdn']) {
        const path = `/_matrix/client/unstable/${flow}/${medium}/submit_token`;
        assert.equal(await validateResponse('POST', path, 200, { success: true }), path);
        await assert.rejects(validateResponse('POST', path, 200, {}), SchemaError);
        await assert.rejects(validateResponse('POST', path, 200, { success: 'yes' }), SchemaError);
        assert.equal(await validateResponse('POST', path, 400, { errcode: 'M_TOKEN_INCORRECT', error: 'Wrong code' }), path);
      }
    }
  });

  it('allows only errors as JSON from the mailed link pages', async () => {
    for (const method of ['GET', 'POST']) {
      const path = '/_synapse/client/password_reset/email/submit_token?sid=a&client_secret=b&token=c';
      await assert.rejects(validateResponse(method, path, 200, { success: true }), SchemaError);
      assert.ok(await validateResponse(method, path, 400, { errcode: 'M_INVALID_PARAM', error: 'Bad' }));
    }
  });

  it('checks shared-secret registration against its documented shapes', async () => {
    const path = '/_synapse/admin/v1/register';
    assert.equal(await validateResponse('GET', path, 200, { nonce: 'abc' }), path);
    await assert.rejects(validateResponse('GET', path, 200, {}), SchemaError);
    const session = { user_id: '@a:test.local', access_token: 't', device_id: 'D', home_server: 'test.local' };
    assert.equal(await validateResponse('POST', path, 200, session), path);
    await assert.rejects(validateResponse('POST', path, 200, { ...session, user_id: 'a' }), SchemaError);
    await assert.rejects(validateResponse('POST', path, 200, { user_id: '@a:test.local', access_token: 't' }), SchemaError);
  });

  it('checks the stable endpoints served under /unstable, and the rules of one push rule kind', async () => {
    await assert.rejects(validateResponse('POST', '/_matrix/client/unstable/keys/device_signing/upload', 200, []), SchemaError);
    assert.ok(await validateResponse('POST', '/_matrix/client/unstable/keys/device_signing/upload', 200, {}));
    const rule = { rule_id: '.m.rule.master', default: true, enabled: false, actions: [] };
    assert.ok(await validateResponse('GET', '/_matrix/client/v3/pushrules/global/override/', 200, [rule]));
    assert.ok(await validateResponse('GET', '/_matrix/client/r0/pushrules/global/override/', 200, [rule]));
    await assert.rejects(validateResponse('GET', '/_matrix/client/v3/pushrules/global/override/', 200, [{ rule_id: 1 }]), SchemaError);
  });
});
