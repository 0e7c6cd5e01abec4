import { createHmac } from 'node:crypto';
import type { TestServer } from './server.js';

/** The shared secret admin tests configure (registration_shared_secret). */
export const ADMIN_SECRET = 'admin tests shared secret';

/** Registers an account through Synapse's shared-secret API, as register_new_matrix_user does; `admin` makes a server admin. */
export async function registerWithSecret(server: TestServer, username: string, password: string, admin: boolean): Promise<{ user_id: string; access_token: string; device_id: string }> {
  const nonce = (await server.api.get('/_synapse/admin/v1/register')).body.nonce as string;
  const mac = createHmac('sha1', ADMIN_SECRET).update(`${nonce}\x00${username}\x00${password}\x00${admin ? 'admin' : 'notadmin'}`).digest('hex');
  const res = await server.api.post<{ user_id: string; access_token: string; device_id: string }>('/_synapse/admin/v1/register', { nonce, username, password, admin, mac });
  if (res.status !== 200) throw new Error(`shared-secret registration of ${username}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}
