import { createHmac } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { Config } from '../config/index.js';
import { constantTimeEqual, randomToken } from '../crypto/tokens.js';
import { MatrixError, forbidden } from '../errors.js';
import type { Store } from '../storage/index.js';
import type { UiaSessionsRepo } from '../storage/uia.js';
import type { AccountService, RegisterResult } from './accounts.js';

const NONCE_LIFETIME_MS = 60_000;
const NONCE_OPERATION = 'shared-secret-registration-nonce';

/** POST /_synapse/admin/v1/register, as parsed at the edge. */
export interface SharedSecretRequest {
  nonce: string;
  username: string;
  password: string;
  mac: string;
  displayname?: string | undefined;
  user_type?: string | undefined;
  admin?: boolean | undefined;
}

/**
 * Synapse's shared-secret registration (/_synapse/admin/v1/register), so that admin tools such as
 * register_new_matrix_user work unchanged. Nonces are single-use rows in the database, so any
 * process sharing it can accept a nonce another one issued.
 */
export class SharedSecretRegistration {
  constructor(
    private readonly config: Config,
    private readonly nonces: UiaSessionsRepo,
    private readonly accounts: AccountService,
    private readonly clock: Clock,
  ) {}

  private secret(): string {
    const secret = this.config.registration_shared_secret;
    if (!secret) throw new MatrixError(400, 'M_UNKNOWN', 'Shared secret registration is not enabled');
    return secret;
  }

  async nonce(): Promise<string> {
    this.secret();
    const nonce = randomToken(24);
    const now = this.clock.now();
    await this.nonces.create({ session_id: nonce, operation: NONCE_OPERATION, user_id: null, created_ts: now, expires_ts: now + NONCE_LIFETIME_MS, results: '{}' });
    return nonce;
  }

  async register(req: SharedSecretRequest, ip: string): Promise<RegisterResult & { home_server: string }> {
    const secret = this.secret();
    const { nonce, username, password, mac, displayname: displayName, user_type: userType } = req;
    const admin = req.admin === true;

    const row = await this.nonces.get(nonce);
    if (!row || row.operation !== NONCE_OPERATION || row.expires_ts < this.clock.now() || !(await this.nonces.delete(nonce))) {
      throw new MatrixError(400, 'M_UNKNOWN', 'Unrecognised nonce');
    }
    const hmac = createHmac('sha1', secret);
    hmac.update(nonce).update('\x00').update(username).update('\x00').update(password).update('\x00').update(admin ? 'admin' : 'notadmin');
    if (userType !== undefined) hmac.update('\x00').update(userType);
    if (!constantTimeEqual(hmac.digest('hex'), mac.toLowerCase())) throw forbidden('HMAC incorrect');

    const localpart = this.accounts.validateLocalpart(username);
    // The admin flag is written in the transaction that creates the account.
    const onCreated = admin ? (work: Store, userId: string) => work.adminUsers.setAdmin(userId, true) : undefined;
    const result = await this.accounts.register({ localpart, password, guest: false, inhibitLogin: false, refresh: false, ip, ...(onCreated ? { onCreated } : {}) });
    if (displayName !== undefined) await this.accounts.setProfileField(result.user_id, result.user_id, 'displayname', displayName);
    return { ...result, home_server: this.config.server_name };
  }
}
