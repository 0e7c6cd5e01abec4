import type { Clock } from '../../clock.js';
import type { Config } from '../../config/index.js';
import { MatrixError, forbidden } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import { optionalString, requireObject, requireString, type JsonObject } from '../../validate.js';
import { uiaParams, type UiaService } from '../uia.js';
import { canonicaliseAddress } from './address.js';
import { bindAtIdentityServer, trustedIdServerUrl } from './identity-server.js';
import { parseClientSecret, parseSid } from './policy.js';
import type { ValidationSessionService } from './validation-sessions.js';

export interface ThreepidListing {
  medium: string;
  address: string;
  validated_at: number;
  added_at: number;
}

const disabled = () => forbidden('Changing third-party identifiers is disabled on this server');
const inUse = () => new MatrixError(400, 'M_THREEPID_IN_USE', 'Third-party identifier is already in use');

/** The 3PIDs of an account: list, add (from a validated session), delete, and the identity-server calls. */
export class AccountThreepidService {
  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly uia: UiaService,
    private readonly sessions: ValidationSessionService,
  ) {}

  async list(userId: string): Promise<ThreepidListing[]> {
    const rows = await this.store.threepids.list(userId);
    return rows.map((r) => ({ medium: r.medium, address: r.address, validated_at: r.validated_ts, added_at: r.added_ts }));
  }

  /**
   * POST /account/3pid/add: the user's password (UIA), then the validated add_threepid session.
   * The database's unique key decides when two accounts race for one address.
   */
  async add(userId: string, body: JsonObject, ip: string): Promise<Record<string, never>> {
    return this.addBehindUia(userId, body, ip, 'POST /account/3pid/add', undefined, () => new MatrixError(400, 'M_THREEPID_AUTH_FAILED', 'The address has not been validated yet'));
  }

  /**
   * The deprecated POST /account/3pid. Myelin validates addresses itself (MSC2263), so the session
   * named is its own and `id_server` is ignored, as where the homeserver verified the address; it
   * adds like /3pid/add, behind the same password check: an access token alone must not be enough
   * to attach an address (which could then reset the password). Unvalidated is 403, per the spec.
   */
  async legacyAdd(userId: string, body: JsonObject, ip: string): Promise<Record<string, never>> {
    const key = body.three_pid_creds !== undefined ? 'three_pid_creds' : 'threePidCreds';
    requireObject(body[key], 'three_pid_creds');
    return this.addBehindUia(userId, body, ip, 'POST /account/3pid', key, () => new MatrixError(403, 'M_THREEPID_AUTH_FAILED', 'The address has not been validated yet'));
  }

  private async addBehindUia(userId: string, body: JsonObject, ip: string, operation: string, credsKey: string | undefined, pending: () => MatrixError): Promise<Record<string, never>> {
    if (!this.config.enable_3pid_changes) throw disabled();
    const credsOf = (params: JsonObject) => (credsKey ? requireObject(params[credsKey], credsKey) : params);
    // Checked now when this request carries them; otherwise the session's remembered ones are used.
    if ((credsKey ? body[credsKey] : body.sid) !== undefined) {
      parseSid(credsOf(body));
      parseClientSecret(credsOf(body));
    }
    const flows = [['m.login.password']];
    const outcome = await this.uia.authenticate({ auth: body.auth, operation, userId, flows, ip, params: uiaParams(body) });
    if (outcome.replay) return {};
    const creds = credsOf(outcome.params);
    const sid = parseSid(creds);
    const clientSecret = parseClientSecret(creds);
    const threepid = await this.sessions.consume({ sid, clientSecret, medium: undefined, flow: 'add_threepid', consumer: outcome.sessionId });
    if (threepid === 'pending') throw pending();
    const added = await this.store.threepids.add({
      medium: threepid.medium,
      address: threepid.address,
      user_id: userId,
      validated_ts: threepid.validated_ts,
      added_ts: this.clock.now(),
    });
    if (!added) throw inUse();
    if (!(await this.uia.finish(outcome.sessionId))) throw this.uia.completedAnswer({ flows }, outcome);
    await this.uia.record(outcome.sessionId, {});
    return {};
  }

  async delete(userId: string, body: JsonObject): Promise<{ id_server_unbind_result: 'no-support' }> {
    if (!this.config.enable_3pid_changes) throw disabled();
    const { medium, address } = this.parseThreepid(body);
    optionalString(body, 'id_server', 512);
    await this.store.threepids.delete(userId, medium, address);
    // Myelin never binds at identity servers, so there is nothing to unbind anywhere.
    return { id_server_unbind_result: 'no-support' };
  }

  /**
   * POST /account/3pid/bind: asks a trusted identity server to bind the address it validated (its
   * own session) to this user. Other identity servers are refused, so clients cannot make Myelin
   * send requests to arbitrary hosts.
   */
  async bind(userId: string, body: JsonObject): Promise<Record<string, never>> {
    const clientSecret = parseClientSecret(body);
    const sid = parseSid(body);
    const idServer = requireString(body, 'id_server', 512);
    const accessToken = requireString(body, 'id_access_token', 2048);
    const baseUrl = trustedIdServerUrl(this.config, idServer);
    if (!baseUrl) throw new MatrixError(400, 'M_SERVER_NOT_TRUSTED', 'This server does not trust that identity server');
    await bindAtIdentityServer(baseUrl, accessToken, { sid, client_secret: clientSecret, mxid: userId });
    return {};
  }

  async unbind(_userId: string, body: JsonObject): Promise<{ id_server_unbind_result: 'no-support' }> {
    this.parseThreepid(body);
    optionalString(body, 'id_server', 512);
    return { id_server_unbind_result: 'no-support' };
  }

  private parseThreepid(body: JsonObject): { medium: string; address: string } {
    const medium = requireString(body, 'medium', 16);
    const address = requireString(body, 'address', 512);
    if (medium !== 'email' && medium !== 'msisdn') throw new MatrixError(400, 'M_INVALID_PARAM', 'Unknown medium');
    return { medium, address: canonicaliseAddress(medium, address) };
  }
}

