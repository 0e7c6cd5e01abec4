import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { stringify as stringifyYaml } from 'yaml';
import { ADMIN_SECRET, registerWithSecret } from './helpers/admin.js';
import { FakeIdentityServer } from './helpers/fake-identity-server.js';
import { HTTP_ENGINES, ManualClock, freshDatabase, rawTestConfig, startTestServer, type TestServer } from './helpers/server.js';

const V1 = '/_synapse/admin/v1';
const V2 = '/_synapse/admin/v2';
const run = promisify(execFile);

type Json = Record<string, unknown>;

for (const engine of HTTP_ENGINES) {
  describe(`admin API: users (${engine})`, () => {
    let server: TestServer;
    let admin: { user_id: string; access_token: string; device_id: string };
    let alice: { user_id: string; access_token: string; device_id: string };
    const clock = new ManualClock();
    const as = (token: string) => ({ token });
    const asAdmin = () => as(admin.access_token);

    before(async () => {
      server = await startTestServer(engine, { registration_shared_secret: ADMIN_SECRET, allow_guest_access: true }, { clock });
      admin = await registerWithSecret(server, 'root', 'root-password-1', true);
      alice = await server.api.register('alice');
    });
    after(async () => server.close());

    const userCount = async () => (await server.api.get<{ total: number }>(`${V2}/users?deactivated=true`, asAdmin())).body.total;
    const details = async (userId: string) => (await server.api.get<Json>(`${V2}/users/${userId}`, asAdmin())).body;
    const canLogIn = async (user: string, password: string) => (await server.api.post('/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password })).status === 200;
    const tokenWorks = async (token: string) => (await server.api.get('/v3/account/whoami', as(token))).status === 200;

    it('makes admins by shared-secret registration with admin: true, and only then', async () => {
      assert.deepEqual((await server.api.get(`${V1}/users/${admin.user_id}/admin`, asAdmin())).body, { admin: true });
      const plain = await registerWithSecret(server, 'plainshared', 'plain-password-1', false);
      assert.deepEqual((await server.api.get(`${V1}/users/${plain.user_id}/admin`, asAdmin())).body, { admin: false });
      assert.equal((await server.api.get(`${V2}/users`, as(plain.access_token))).status, 403);
    });

    it('refuses every admin endpoint without a token (401) and to a non-admin (403), changing nothing', async () => {
      const before = await details(alice.user_id);
      const usersBefore = await userCount();
      const calls: [string, string, unknown?][] = [
        ['GET', `${V2}/users`],
        ['GET', `${V2}/users/${alice.user_id}`],
        ['PUT', `${V2}/users/@mallory:test.local`, { password: 'mallory-password', admin: true }],
        ['PUT', `${V2}/users/${alice.user_id}`, { admin: true, displayname: 'Pwned' }],
        ['POST', `${V1}/deactivate/${admin.user_id}`, {}],
        ['POST', `${V1}/reset_password/${admin.user_id}`, { new_password: 'taken-over-1' }],
        ['GET', `${V2}/users/${admin.user_id}/devices`],
        ['GET', `${V2}/users/${admin.user_id}/devices/${admin.device_id}`],
        ['PUT', `${V2}/users/${admin.user_id}/devices/${admin.device_id}`, { display_name: 'x' }],
        ['DELETE', `${V2}/users/${admin.user_id}/devices/${admin.device_id}`],
        ['POST', `${V2}/users/${admin.user_id}/delete_devices`, { devices: [admin.device_id] }],
        ['GET', `${V1}/threepid/email/users/root@example.org`],
        ['GET', `${V1}/users/${alice.user_id}/admin`],
        ['PUT', `${V1}/users/${alice.user_id}/admin`, { admin: true }],
        ['POST', `${V1}/users/${admin.user_id}/login`, {}],
        ['GET', `${V1}/users/${admin.user_id}/joined_rooms`],
        ['GET', `${V1}/whois/${admin.user_id}`],
        ['GET', `${V1}/rooms`],
        ['GET', `${V1}/rooms/!nope:test.local`],
        ['GET', `${V1}/rooms/!nope:test.local/members`],
        ['DELETE', `${V1}/rooms/!nope:test.local`, { block: true }],
        ['GET', `${V1}/registration_tokens`],
        ['POST', `${V1}/registration_tokens/new`, { token: 'sneaky' }],
        ['GET', `${V1}/registration_tokens/sneaky`],
        ['PUT', `${V1}/registration_tokens/sneaky`, { uses_allowed: 1 }],
        ['DELETE', `${V1}/registration_tokens/sneaky`],
      ];
      for (const [method, path, body] of calls) {
        const anonymous = await server.api.request(method, path, body);
        assert.equal(anonymous.status, 401, `${method} ${path} without a token`);
        assert.equal(anonymous.body.errcode, 'M_MISSING_TOKEN');
        const denied = await server.api.request(method, path, body, as(alice.access_token));
        assert.equal(denied.status, 403, `${method} ${path} as a non-admin: ${JSON.stringify(denied.body)}`);
        assert.equal(denied.body.errcode, 'M_FORBIDDEN');
        const bad = await server.api.request(method, path, body, as('myt_not-a-token'));
        assert.equal(bad.status, 401, `${method} ${path} with an unknown token`);
        assert.equal(bad.body.errcode, 'M_UNKNOWN_TOKEN');
      }
      assert.deepEqual(await details(alice.user_id), before);
      assert.equal(await userCount(), usersBefore);
      assert.ok(await tokenWorks(admin.access_token), 'the admin is still logged in');
      assert.ok(await canLogIn('root', 'root-password-1'));
      assert.equal((await server.api.get(`${V1}/registration_tokens/sneaky`, asAdmin())).status, 404);
      // The spec's whois is open to the user themself only.
      assert.equal((await server.api.get(`/v3/admin/whois/${admin.user_id}`, as(alice.access_token))).status, 403);
      const self = await server.api.get<Json>(`/v3/admin/whois/${alice.user_id}`, as(alice.access_token));
      assert.equal(self.status, 200);
      assert.ok((self.body.devices as Json)[alice.device_id], 'own device listed');
    });

    it('lists users in Synapse’s shape, with paging, filters and orders', async () => {
      for (const [name, displayname] of [
        ['list-b', 'Zed Banana'],
        ['list-a', 'Mia Apple'],
        ['list-c', 'Kim Cherry'],
      ]) {
        const created = await server.api.put(`${V2}/users/@${name}:test.local`, { password: 'list-password-1', displayname }, asAdmin());
        assert.equal(created.status, 201, JSON.stringify(created.body));
        clock.advance(1000);
      }
      const guest = await server.api.post<{ user_id: string }>('/v3/register?kind=guest', {});
      assert.equal(guest.status, 200);
      await server.api.put(`${V2}/users/@list-c:test.local`, { deactivated: true }, asAdmin());

      const all = await server.api.get<{ users: Json[]; total: number; next_token?: string }>(`${V2}/users?limit=1000`, asAdmin());
      assert.equal(all.status, 200);
      const names = all.body.users.map((u) => u.name as string);
      assert.deepEqual(names, [...names].sort(), 'ordered by name by default');
      assert.ok(names.includes(guest.body.user_id), 'guests are listed by default');
      assert.ok(!names.includes('@list-c:test.local'), 'deactivated users are not listed by default');
      assert.equal(all.body.total, names.length);
      assert.equal(all.body.next_token, undefined);
      const a = all.body.users.find((u) => u.name === '@list-a:test.local')!;
      assert.equal(a.displayname, 'Mia Apple');
      assert.equal(a.admin, false);
      assert.equal(typeof a.creation_ts, 'number');
      assert.ok((a.creation_ts as number) > 1e12, 'creation_ts in milliseconds in the list');
      assert.equal(all.body.users.find((u) => u.name === admin.user_id)!.admin, true);

      // Paging: from/limit, next_token while more remain, the total throughout.
      const seen: string[] = [];
      let from: string | undefined = '0';
      while (from !== undefined) {
        const page: { status: number; body: { users: Json[]; total: number; next_token?: string } } = await server.api.get(`${V2}/users?limit=2&from=${from}`, asAdmin());
        assert.equal(page.status, 200);
        assert.ok(page.body.users.length <= 2);
        assert.equal(page.body.total, names.length);
        seen.push(...page.body.users.map((u) => u.name as string));
        from = page.body.next_token;
      }
      assert.deepEqual(seen, names);

      const q = async (query: string) => (await server.api.get<{ users: Json[]; total: number }>(`${V2}/users?${query}`, asAdmin())).body;
      assert.deepEqual((await q('name=LIST-')).users.map((u) => u.name), ['@list-a:test.local', '@list-b:test.local'], 'localpart, case-insensitively');
      assert.deepEqual((await q('name=banana')).users.map((u) => u.name), ['@list-b:test.local'], 'display name, case-insensitively');
      assert.deepEqual((await q('name=test.local')).users, [], 'name looks at the localpart, not the server name');
      assert.deepEqual((await q('user_id=%40LIST-A')).users.map((u) => u.name), ['@list-a:test.local']);
      assert.deepEqual((await q('name=%25')).users, [], 'a LIKE wildcard in the term is taken literally');
      const withDeactivated = await q('name=list-&deactivated=true');
      assert.deepEqual(withDeactivated.users.map((u) => [u.name, u.deactivated]), [
        ['@list-a:test.local', false],
        ['@list-b:test.local', false],
        ['@list-c:test.local', true],
      ]);
      assert.ok(!(await q('guests=false&limit=1000')).users.some((u) => u.is_guest === true));
      assert.ok((await q('guests=true&limit=1000')).users.some((u) => u.name === guest.body.user_id && u.is_guest === true));
      assert.deepEqual((await q('admins=true')).users.map((u) => u.name), [admin.user_id]);
      assert.ok(!(await q('admins=false&limit=1000')).users.some((u) => u.admin === true));
      assert.deepEqual((await q('name=list-&order_by=displayname')).users.map((u) => u.displayname), ['Mia Apple', 'Zed Banana']);
      assert.deepEqual((await q('name=list-&order_by=displayname&dir=b')).users.map((u) => u.displayname), ['Zed Banana', 'Mia Apple']);
      assert.deepEqual((await q('name=list-&order_by=creation_ts')).users.map((u) => u.name), ['@list-b:test.local', '@list-a:test.local']);

      for (const bad of ['from=-1', 'limit=x', 'guests=yes', 'order_by=password_hash', 'dir=up', 'deactivated=1']) {
        const res = await server.api.get(`${V2}/users?${bad}`, asAdmin());
        assert.equal(res.status, 400, bad);
        assert.equal(res.body.errcode, 'M_INVALID_PARAM', bad);
      }
    });

    it('creates an account with PUT (201): password, display name, 3PIDs, admin', async () => {
      const res = await server.api.put<Json>(
        `${V2}/users/@dora:test.local`,
        { password: 'dora-password-1', displayname: 'Dora', avatar_url: 'mxc://test.local/dora', threepids: [{ medium: 'email', address: 'Dora@Example.org' }], admin: true },
        asAdmin(),
      );
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.equal(res.body.name, '@dora:test.local');
      assert.equal(res.body.displayname, 'Dora');
      assert.equal(res.body.avatar_url, 'mxc://test.local/dora');
      assert.equal(res.body.admin, true);
      assert.equal(res.body.deactivated, false);
      assert.deepEqual(
        (res.body.threepids as Json[]).map((t) => [t.medium, t.address]),
        [['email', 'dora@example.org']],
      );
      assert.ok((res.body.creation_ts as number) < 1e11, 'creation_ts in seconds for one user, as Synapse answers');
      const login = await server.api.login('dora', 'dora-password-1');
      assert.equal((await server.api.get(`${V2}/users`, as(login.access_token))).status, 200, 'a new admin can use the admin API');
      const byMail = await server.api.post('/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.thirdparty', medium: 'email', address: 'dora@example.org' }, password: 'dora-password-1' });
      assert.equal(byMail.status, 200);
      assert.deepEqual((await server.api.get(`${V1}/threepid/email/users/DORA@example.org`, asAdmin())).body, { user_id: '@dora:test.local' });
      const noPassword = await server.api.put<Json>(`${V2}/users/@nopass:test.local`, {}, asAdmin());
      assert.equal(noPassword.status, 201);
      assert.equal(noPassword.body.displayname, 'nopass', 'the localpart is the default display name');
    });

    it('modifies an account with PUT (200)', async () => {
      await server.api.put(`${V2}/users/@eve:test.local`, { password: 'eve-password-1', threepids: [{ medium: 'email', address: 'eve1@example.org' }] }, asAdmin());
      const session = await server.api.login('eve', 'eve-password-1');
      const res = await server.api.put<Json>(
        `${V2}/users/@eve:test.local`,
        { displayname: 'Eve Two', threepids: [{ medium: 'email', address: 'eve2@example.org' }, { medium: 'msisdn', address: '4915140000077' }], admin: true },
        asAdmin(),
      );
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.displayname, 'Eve Two');
      assert.equal(res.body.admin, true);
      assert.deepEqual((res.body.threepids as Json[]).map((t) => t.address).sort(), ['4915140000077', 'eve2@example.org']);
      assert.equal((await server.api.get(`${V1}/threepid/email/users/eve1@example.org`, asAdmin())).status, 404, 'the replaced address is gone');
      assert.ok(await tokenWorks(session.access_token), 'no password given: devices stay');

      // A new password logs the devices out, unless logout_devices is false.
      await server.api.put(`${V2}/users/@eve:test.local`, { password: 'eve-password-2', logout_devices: false }, asAdmin());
      assert.ok(await tokenWorks(session.access_token));
      assert.ok(await canLogIn('eve', 'eve-password-2'));
      assert.ok(!(await canLogIn('eve', 'eve-password-1')));
      await server.api.put(`${V2}/users/@eve:test.local`, { password: 'eve-password-3' }, asAdmin());
      assert.ok(!(await tokenWorks(session.access_token)), 'logged out by the password change');

      // Deactivation through PUT, then reactivation (which needs a password).
      const deactivated = await server.api.put<Json>(`${V2}/users/@eve:test.local`, { deactivated: true }, asAdmin());
      assert.equal(deactivated.status, 200);
      assert.equal(deactivated.body.deactivated, true);
      assert.deepEqual(deactivated.body.threepids, []);
      assert.ok(!(await canLogIn('eve', 'eve-password-3')));
      const noPassword = await server.api.put(`${V2}/users/@eve:test.local`, { deactivated: false }, asAdmin());
      assert.equal(noPassword.status, 400);
      assert.equal((await details('@eve:test.local')).deactivated, true, 'refused: still deactivated');
      const back = await server.api.put<Json>(`${V2}/users/@eve:test.local`, { deactivated: false, password: 'eve-password-4' }, asAdmin());
      assert.equal(back.status, 200);
      assert.equal(back.body.deactivated, false);
      assert.ok(await canLogIn('eve', 'eve-password-4'));
    });

    it('refuses a bad or hostile PUT with a clear error and changes nothing', async () => {
      await server.api.put(`${V2}/users/@frank:test.local`, { password: 'frank-password-1', displayname: 'Frank', threepids: [{ medium: 'email', address: 'frank@example.org' }] }, asAdmin());
      await server.api.put(`${V2}/users/@grace:test.local`, { threepids: [{ medium: 'email', address: 'grace@example.org' }] }, asAdmin());
      const frankBefore = await details('@frank:test.local');
      const count = await userCount();
      const cases: [string, unknown, number, string][] = [
        ['@frank:test.local', { displayname: 'Taken', threepids: [{ medium: 'email', address: 'grace@example.org' }] }, 400, 'M_THREEPID_IN_USE'],
        ['@frank:test.local', { displayname: 'Bad', admin: 'yes' }, 400, 'M_BAD_JSON'],
        ['@frank:test.local', { displayname: 'Bad', threepids: [{ medium: 'fax', address: '123' }] }, 400, 'M_INVALID_PARAM'],
        ['@frank:test.local', { displayname: 'Bad', threepids: [{ medium: 'email', address: 'not an address' }] }, 400, 'M_INVALID_PARAM'],
        ['@frank:test.local', { displayname: 'Bad', avatar_url: 'https://example.org/a.png' }, 400, 'M_INVALID_PARAM'],
        ['@frank:test.local', { displayname: 'Bad', password: 'p', deactivated: true }, 400, 'M_INVALID_PARAM'],
        ['@frank:test.local', { displayname: 'Bad', user_type: 'bot' }, 400, 'M_INVALID_PARAM'],
        ['@frank:test.local', { displayname: 'Bad', external_ids: [{ auth_provider: 'x', external_id: 'y' }] }, 400, 'M_INVALID_PARAM'],
        ['@frank:test.local', { displayname: 'x'.repeat(300) }, 400, 'M_INVALID_PARAM'],
        ['@frank:test.local', [1, 2], 400, 'M_BAD_JSON'],
        ['@frank:other.server', { password: 'remote-password' }, 400, 'M_INVALID_PARAM'],
        ['not-a-user-id', { password: 'bad-password' }, 400, 'M_INVALID_PARAM'],
        ['@Upper:test.local', { password: 'upper-password' }, 400, 'M_INVALID_USERNAME'],
        ['@_underscore:test.local', { password: 'underscore-password' }, 400, 'M_INVALID_USERNAME'],
        ['@henry:test.local', { threepids: [{ medium: 'email', address: 'frank@example.org' }] }, 400, 'M_THREEPID_IN_USE'],
        ['@henry:test.local', { deactivated: true }, 400, 'M_INVALID_PARAM'],
      ];
      for (const [userId, body, status, errcode] of cases) {
        const res = await server.api.put(`${V2}/users/${encodeURIComponent(userId)}`, body, asAdmin());
        assert.equal(res.status, status, `${userId} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.errcode, errcode, `${userId} ${JSON.stringify(body)}`);
      }
      const notJson = await server.api.request('PUT', `${V2}/users/@frank:test.local`, undefined, { ...asAdmin(), rawBody: '{"displayname":', headers: { 'content-type': 'application/json' } });
      assert.equal(notJson.status, 400);
      assert.equal(notJson.body.errcode, 'M_NOT_JSON');
      assert.deepEqual(await details('@frank:test.local'), frankBefore);
      assert.equal(await userCount(), count, 'no account was created');
      assert.equal((await server.api.get(`${V2}/users/@henry:test.local`, asAdmin())).status, 404);
      assert.ok(await canLogIn('frank', 'frank-password-1'));
    });

    it('deactivates (and erases) through POST /deactivate', async () => {
      await server.api.put(`${V2}/users/@ivan:test.local`, { password: 'ivan-password-1', displayname: 'Ivan', threepids: [{ medium: 'email', address: 'ivan@example.org' }] }, asAdmin());
      const session = await server.api.login('ivan', 'ivan-password-1');
      const room = await server.api.post<{ room_id: string }>('/v3/createRoom', { name: 'Ivan’s room' }, as(session.access_token));
      assert.equal(room.status, 200);

      for (const [userId, body, status, errcode] of [
        ['@nobody:test.local', {}, 404, 'M_NOT_FOUND'],
        ['@ivan:elsewhere.example', {}, 400, 'M_INVALID_PARAM'],
        ['@ivan:test.local', { erase: 'yes' }, 400, 'M_BAD_JSON'],
      ] as const) {
        const res = await server.api.post(`${V1}/deactivate/${userId}`, body, asAdmin());
        assert.equal(res.status, status, `${userId} ${JSON.stringify(body)}`);
        assert.equal(res.body.errcode, errcode);
      }
      assert.ok(await tokenWorks(session.access_token), 'the refused requests changed nothing');

      const res = await server.api.post(`${V1}/deactivate/@ivan:test.local`, { erase: true }, asAdmin());
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { id_server_unbind_result: 'success' });
      const after = await details('@ivan:test.local');
      assert.equal(after.deactivated, true);
      assert.equal(after.erased, true);
      assert.equal(after.displayname, null);
      assert.deepEqual(after.threepids, []);
      assert.ok(!(await tokenWorks(session.access_token)));
      assert.ok(!(await canLogIn('ivan', 'ivan-password-1')));
      assert.equal((await server.api.get(`${V1}/threepid/email/users/ivan@example.org`, asAdmin())).status, 404);
      const members = await server.api.get<{ members: string[] }>(`${V1}/rooms/${room.body.room_id}/members`, asAdmin());
      assert.deepEqual(members.body.members, [], 'the deactivated account left its rooms');
      // An empty body works too (Synapse's backwards compatibility).
      await server.api.put(`${V2}/users/@judy:test.local`, { password: 'judy-password-1' }, asAdmin());
      const plain = await server.api.request('POST', `${V1}/deactivate/@judy:test.local`, undefined, asAdmin());
      assert.equal(plain.status, 200);
      assert.equal((await details('@judy:test.local')).erased, false);
    });

    it('resets a password through POST /reset_password', async () => {
      await server.api.put(`${V2}/users/@kate:test.local`, { password: 'kate-password-1' }, asAdmin());
      const one = await server.api.login('kate', 'kate-password-1');
      const two = await server.api.login('kate', 'kate-password-1');
      const keep = await server.api.post(`${V1}/reset_password/@kate:test.local`, { new_password: 'kate-password-2', logout_devices: false }, asAdmin());
      assert.equal(keep.status, 200);
      assert.deepEqual(keep.body, {});
      assert.ok(await tokenWorks(one.access_token), 'logout_devices: false keeps the sessions');
      assert.ok(await canLogIn('kate', 'kate-password-2'));
      assert.ok(!(await canLogIn('kate', 'kate-password-1')));
      await server.api.post(`${V1}/reset_password/@kate:test.local`, { new_password: 'kate-password-3' }, asAdmin());
      assert.ok(!(await tokenWorks(one.access_token)) && !(await tokenWorks(two.access_token)), 'by default every session ends');
      for (const [userId, body, status, errcode] of [
        ['@kate:test.local', {}, 400, 'M_MISSING_PARAM'],
        ['@kate:test.local', { new_password: 42 }, 400, 'M_BAD_JSON'],
        ['@kate:test.local', { new_password: 'x'.repeat(600) }, 400, 'M_INVALID_PARAM'],
        ['@nobody:test.local', { new_password: 'whatever-1' }, 404, 'M_NOT_FOUND'],
        ['@kate:remote.example', { new_password: 'whatever-1' }, 400, 'M_INVALID_PARAM'],
      ] as const) {
        const res = await server.api.post(`${V1}/reset_password/${userId}`, body, asAdmin());
        assert.equal(res.status, status, JSON.stringify(body));
        assert.equal(res.body.errcode, errcode);
      }
      assert.ok(await canLogIn('kate', 'kate-password-3'), 'the refused resets changed nothing');
    });

    it('shows whois, devices, and renames and deletes devices', async () => {
      await server.api.put(`${V2}/users/@leo:test.local`, { password: 'leo-password-1' }, asAdmin());
      const one = await server.api.post<{ access_token: string; device_id: string }>('/v3/login', {
        type: 'm.login.password',
        identifier: { type: 'm.id.user', user: 'leo' },
        password: 'leo-password-1',
        initial_device_display_name: 'Phone',
      });
      const two = await server.api.login('leo', 'leo-password-1');
      const three = await server.api.login('leo', 'leo-password-1');

      const whois = await server.api.get<{ user_id: string; devices: Record<string, { sessions: { connections: Json[] }[] }> }>(`${V1}/whois/@leo:test.local`, asAdmin());
      assert.equal(whois.status, 200);
      assert.deepEqual(Object.keys(whois.body.devices).sort(), [one.body.device_id, two.device_id, three.device_id].sort());
      assert.equal(whois.body.devices[two.device_id]!.sessions[0]!.connections[0]!.ip, '127.0.0.1');

      const list = await server.api.get<{ devices: Json[]; total: number }>(`${V2}/users/@leo:test.local/devices`, asAdmin());
      assert.equal(list.body.total, 3);
      const phone = list.body.devices.find((d) => d.device_id === one.body.device_id)!;
      assert.equal(phone.display_name, 'Phone');
      assert.equal(phone.user_id, '@leo:test.local');
      const single = await server.api.get<Json>(`${V2}/users/@leo:test.local/devices/${one.body.device_id}`, asAdmin());
      assert.equal(single.body.display_name, 'Phone');
      assert.equal((await server.api.put(`${V2}/users/@leo:test.local/devices/${one.body.device_id}`, { display_name: 'Old phone' }, asAdmin())).status, 200);
      assert.equal((await server.api.get<Json>(`${V2}/users/@leo:test.local/devices/${one.body.device_id}`, asAdmin())).body.display_name, 'Old phone');
      assert.equal((await server.api.get(`${V2}/users/@leo:test.local/devices/NOSUCHDEVICE`, asAdmin())).status, 404);
      assert.equal((await server.api.put(`${V2}/users/@leo:test.local/devices/NOSUCHDEVICE`, { display_name: 'x' }, asAdmin())).status, 404);
      assert.equal((await server.api.get(`${V2}/users/@nobody:test.local/devices`, asAdmin())).status, 404);
      assert.equal((await server.api.get(`${V2}/users/@leo:remote.example/devices`, asAdmin())).status, 400);
      const badList = await server.api.post(`${V2}/users/@leo:test.local/delete_devices`, { devices: 'all' }, asAdmin());
      assert.equal(badList.status, 400);
      assert.equal((await server.api.get<{ total: number }>(`${V2}/users/@leo:test.local/devices`, asAdmin())).body.total, 3, 'the bad request deleted nothing');

      assert.equal((await server.api.delete(`${V2}/users/@leo:test.local/devices/${one.body.device_id}`, undefined, asAdmin())).status, 200);
      assert.ok(!(await tokenWorks(one.body.access_token)), 'the deleted device is logged out');
      assert.ok(await tokenWorks(two.access_token));
      assert.equal((await server.api.post(`${V2}/users/@leo:test.local/delete_devices`, { devices: [two.device_id, 'NOSUCHDEVICE'] }, asAdmin())).status, 200);
      assert.ok(!(await tokenWorks(two.access_token)));
      assert.ok(await tokenWorks(three.access_token));
      const left = await server.api.get<{ devices: Json[]; total: number }>(`${V2}/users/@leo:test.local/devices`, asAdmin());
      assert.deepEqual(left.body.devices.map((d) => d.device_id), [three.device_id]);
    });

    it('finds users by 3PID', async () => {
      await server.api.put(`${V2}/users/@mona:test.local`, { threepids: [{ medium: 'email', address: 'mona@example.org' }, { medium: 'msisdn', address: '4915140000078' }] }, asAdmin());
      assert.deepEqual((await server.api.get(`${V1}/threepid/email/users/Mona@Example.org`, asAdmin())).body, { user_id: '@mona:test.local' });
      assert.deepEqual((await server.api.get(`${V1}/threepid/msisdn/users/4915140000078`, asAdmin())).body, { user_id: '@mona:test.local' });
      for (const path of ['email/users/nobody@example.org', 'msisdn/users/4915140000079', 'fax/users/mona@example.org', 'email/users/not-an-address']) {
        const res = await server.api.get(`${V1}/threepid/${path}`, asAdmin());
        assert.equal(res.status, 404, path);
        assert.equal(res.body.errcode, 'M_NOT_FOUND');
      }
    });

    it('reads and sets the admin flag; an admin may not demote themself', async () => {
      await server.api.put(`${V2}/users/@nina:test.local`, { password: 'nina-password-1' }, asAdmin());
      const nina = await server.api.login('nina', 'nina-password-1');
      assert.equal((await server.api.get(`${V2}/users`, as(nina.access_token))).status, 403);
      assert.equal((await server.api.put(`${V1}/users/@nina:test.local/admin`, { admin: true }, asAdmin())).status, 200);
      assert.deepEqual((await server.api.get(`${V1}/users/@nina:test.local/admin`, asAdmin())).body, { admin: true });
      assert.equal((await server.api.get(`${V2}/users`, as(nina.access_token))).status, 200, 'the new admin may use the API at once');
      const self = await server.api.put(`${V1}/users/@nina:test.local/admin`, { admin: false }, as(nina.access_token));
      assert.equal(self.status, 400);
      assert.match(String(self.body.error), /demote yourself/);
      const selfPut = await server.api.put(`${V2}/users/@nina:test.local`, { admin: false }, as(nina.access_token));
      assert.equal(selfPut.status, 400);
      assert.deepEqual((await server.api.get(`${V1}/users/@nina:test.local/admin`, asAdmin())).body, { admin: true }, 'still an admin');
      assert.equal((await server.api.put(`${V1}/users/@nina:test.local/admin`, { admin: false }, asAdmin())).status, 200);
      assert.equal((await server.api.get(`${V2}/users`, as(nina.access_token))).status, 403, 'demoted: refused again');
      for (const [userId, body, status, errcode] of [
        ['@nina:test.local', {}, 400, 'M_MISSING_PARAM'],
        ['@nina:test.local', { admin: 'true' }, 400, 'M_BAD_JSON'],
        ['@nobody:test.local', { admin: true }, 404, 'M_NOT_FOUND'],
        ['@nina:remote.example', { admin: true }, 400, 'M_INVALID_PARAM'],
      ] as const) {
        const res = await server.api.put(`${V1}/users/${userId}/admin`, body, asAdmin());
        assert.equal(res.status, status, JSON.stringify(body));
        assert.equal(res.body.errcode, errcode);
      }
      assert.equal((await server.api.get(`${V1}/users/@nobody:test.local/admin`, asAdmin())).status, 404);
      assert.deepEqual((await server.api.get(`${V1}/users/@nina:test.local/admin`, asAdmin())).body, { admin: false });
    });

    it('logs in as a user (a puppet token on no device of theirs), never as oneself', async () => {
      await server.api.put(`${V2}/users/@olga:test.local`, { password: 'olga-password-1' }, asAdmin());
      const own = await server.api.login('olga', 'olga-password-1');
      const res = await server.api.post<{ access_token: string }>(`${V1}/users/@olga:test.local/login`, {}, asAdmin());
      assert.equal(res.status, 200);
      const whoami = await server.api.get<Json>('/v3/account/whoami', as(res.body.access_token));
      assert.equal(whoami.body.user_id, '@olga:test.local');
      const devices = await server.api.get<{ devices: Json[] }>('/v3/devices', as(own.access_token));
      assert.deepEqual(devices.body.devices.map((d) => d.device_id), [own.device_id], 'not in the user’s device list');
      assert.equal((await server.api.post('/v3/logout', {}, as(res.body.access_token))).status, 200);
      assert.ok(!(await tokenWorks(res.body.access_token)), '/logout ends it');
      assert.ok(await tokenWorks(own.access_token), 'and only it');

      const expiring = await server.api.post<{ access_token: string }>(`${V1}/users/@olga:test.local/login`, { valid_until_ms: clock.now() + 60_000 }, asAdmin());
      assert.ok(await tokenWorks(expiring.body.access_token));
      clock.advance(61_000);
      assert.ok(!(await tokenWorks(expiring.body.access_token)), 'valid_until_ms is honoured');

      for (const [userId, body, status, errcode] of [
        [admin.user_id, {}, 400, 'M_INVALID_PARAM'],
        ['@nobody:test.local', {}, 404, 'M_NOT_FOUND'],
        ['@olga:remote.example', {}, 400, 'M_INVALID_PARAM'],
        ['@olga:test.local', { valid_until_ms: 'soon' }, 400, 'M_BAD_JSON'],
        ['@olga:test.local', { valid_until_ms: 1000 }, 400, 'M_INVALID_PARAM'],
      ] as const) {
        const refused = await server.api.post(`${V1}/users/${userId}/login`, body, asAdmin());
        assert.equal(refused.status, status, `${userId} ${JSON.stringify(body)}`);
        assert.equal(refused.body.errcode, errcode);
      }
    });

    it('lists the rooms a user is joined to', async () => {
      await server.api.put(`${V2}/users/@pia:test.local`, { password: 'pia-password-1' }, asAdmin());
      const pia = await server.api.login('pia', 'pia-password-1');
      const r1 = await server.api.post<{ room_id: string }>('/v3/createRoom', {}, as(pia.access_token));
      const r2 = await server.api.post<{ room_id: string }>('/v3/createRoom', {}, as(pia.access_token));
      await server.api.post(`/v3/rooms/${r2.body.room_id}/leave`, {}, as(pia.access_token));
      const res = await server.api.get(`${V1}/users/@pia:test.local/joined_rooms`, asAdmin());
      assert.deepEqual(res.body, { joined_rooms: [r1.body.room_id], total: 1 });
      assert.equal((await server.api.get(`${V1}/users/@nobody:test.local/joined_rooms`, asAdmin())).status, 404);
    });

    it('serves the server version without a token, as Synapse does', async () => {
      const res = await server.api.get<{ server_version: string }>(`${V1}/server_version`);
      assert.equal(res.status, 200);
      assert.match(res.body.server_version, /^\d+\.\d+\.\d+ \(Myelin\)$/);
    });
  });
}

for (const engine of HTTP_ENGINES) {
  describe(`admin API: 3PIDs taken off an account are unbound at identity servers (${engine})`, () => {
    let server: TestServer;
    let fake: FakeIdentityServer;
    before(async () => {
      fake = await FakeIdentityServer.start();
      server = await startTestServer(engine, { registration_shared_secret: ADMIN_SECRET, trusted_third_party_id_servers: [fake.url], identity_server_timeout: '1s' });
      fake.homeserverUrl = server.url;
    });
    after(async () => {
      await server.close();
      await fake.stop();
    });

    it('unbinds a removed address where it was bound; an identity server that does not answer fails the change, which then changes nothing', async () => {
      const admin = await registerWithSecret(server, 'root', 'root-password-1', true);
      const user = await server.api.register('quinn');
      await server.api.put(`${V2}/users/${user.user_id}`, { threepids: [{ medium: 'email', address: 'quinn@example.org' }, { medium: 'email', address: 'quinn2@example.org' }] }, { token: admin.access_token });
      for (const address of ['quinn@example.org', 'quinn2@example.org']) {
        const sid = `sid-${address.replace(/[^a-z0-9]/g, '')}`;
        fake.sessions.set(sid, { medium: 'email', address });
        const bound = await server.api.post('/v3/account/3pid/bind', { sid, client_secret: 'cs', id_server: fake.name, id_access_token: 'is-token' }, { token: user.access_token });
        assert.equal(bound.status, 200, JSON.stringify(bound.body));
      }
      const addresses = async () => ((await server.api.get<Json>(`${V2}/users/${user.user_id}`, { token: admin.access_token })).body.threepids as Json[]).map((t) => t.address).sort();

      await fake.stop();
      const down = await server.api.put(`${V2}/users/${user.user_id}`, { displayname: 'Not now', threepids: [{ medium: 'email', address: 'quinn2@example.org' }] }, { token: admin.access_token, expectServerError: true });
      assert.ok(down.status >= 500, `the unreachable identity server fails the change: ${down.status}`);
      assert.deepEqual(await addresses(), ['quinn2@example.org', 'quinn@example.org']);
      assert.equal((await server.api.get<Json>(`${V2}/users/${user.user_id}`, { token: admin.access_token })).body.displayname, 'quinn');

      await fake.start();
      const res = await server.api.put<Json>(`${V2}/users/${user.user_id}`, { displayname: 'Quinn', threepids: [{ medium: 'email', address: 'quinn2@example.org' }] }, { token: admin.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.displayname, 'Quinn');
      assert.deepEqual(await addresses(), ['quinn2@example.org']);
      assert.deepEqual(fake.verified.map((c) => `${c.body.threepid?.address} ${c.body.mxid}`), [`quinn@example.org ${user.user_id}`], 'only the removed address is unbound, with a good signature');
    });
  });
}

describe('register-user --admin', () => {
  const dir = mkdtempSync(join(tmpdir(), 'myelin-admin-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('creates a server admin from the command line (and a plain user without --admin)', async () => {
    const fresh = await freshDatabase('sqlite');
    try {
      const path = join(dir, 'homeserver.yaml');
      writeFileSync(path, stringifyYaml({ ...rawTestConfig(8008, fresh.database), log_level: 'error' }));
      const cli = (args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/main.ts', 'register-user', '--config', path, ...args], { cwd: join(import.meta.dirname, '..'), timeout: 60_000 });
      const created = await Promise.all([cli(['--user', 'cliroot', '--password', 'cli-root-password', '--admin']), cli(['--user', 'clipeon', '--password', 'cli-peon-password'])]);
      assert.match(created[0].stdout, /Created @cliroot:test\.local \(server admin\)/);
      assert.match(created[1].stdout, /Created @clipeon:test\.local\n/);
      const server = await startTestServer('sqlite', {}, { database: fresh.database });
      try {
        const root = await server.api.login('cliroot', 'cli-root-password');
        const peon = await server.api.login('clipeon', 'cli-peon-password');
        assert.deepEqual((await server.api.get(`${V1}/users/@clipeon:test.local/admin`, { token: root.access_token })).body, { admin: false });
        assert.deepEqual((await server.api.get(`${V1}/users/@cliroot:test.local/admin`, { token: root.access_token })).body, { admin: true });
        assert.equal((await server.api.get(`${V2}/users`, { token: peon.access_token })).status, 403);
      } finally {
        await server.close();
      }
    } finally {
      await fresh.drop();
    }
  });
});
