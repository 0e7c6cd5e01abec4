import type { Clock } from '../../clock.js';
import type { Config } from '../../config/index.js';
import { MatrixError, forbidden } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import { Operation, type AuthDict, type UiaOperation, type UiaParams, type UiaService } from '../uia.js';
import { canonicaliseAddress, type Medium } from './address.js';
import { bindAtIdentityServer } from './identity-server.js';
import type { IdentityUnbinding, IdServerUnbindResult } from './identity-unbind.js';
import type { ValidationSessionService, ValidatedThreepid } from './validation-sessions.js';

export interface ThreepidListing {
  medium: string;
  address: string;
  validated_at: number;
  added_at: number;
}

/** A validation session's credentials. */
export interface ThreepidCreds {
  sid: string;
  client_secret: string;
}

/** POST /account/3pid/add (and the deprecated POST /account/3pid), as parsed at the edge. */
export interface AddThreepidRequest {
  auth?: AuthDict | undefined;
  /** The credentials, remembered by the UIA session: a later request of it may leave them out. */
  params: UiaParams<ThreepidCreds>;
}

/** An existing 3PID: medium and canonical address. */
export interface ThreepidKey {
  medium: Medium;
  address: string;
}

/** POST /account/3pid/delete and /unbind: the 3PID, and the identity server to unbind it from. */
export interface UnbindRequest extends ThreepidKey {
  id_server?: string | undefined;
}

export interface BindRequest extends ThreepidCreds {
  id_server: string;
  id_access_token: string;
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
    private readonly identity: IdentityUnbinding,
  ) {}

  async list(userId: string): Promise<ThreepidListing[]> {
    const rows = await this.store.threepids.list(userId);
    return rows.map((r) => ({ medium: r.medium, address: r.address, validated_at: r.validated_ts, added_at: r.added_ts }));
  }

  /**
   * POST /account/3pid/add: the user's password (UIA), then the validated add_threepid session.
   * The database's unique key decides when two accounts race for one address.
   */
  add(userId: string, req: AddThreepidRequest, ip: string): Promise<Record<string, never>> {
    return this.addBehindUia(userId, req, ip, Operation.addThreepid, () => new MatrixError(400, 'M_THREEPID_AUTH_FAILED', 'The address has not been validated yet'));
  }

  /**
   * The deprecated POST /account/3pid. Myelin validates addresses itself (MSC2263), so the session
   * named is its own and `id_server` is ignored, as where the homeserver verified the address; it
   * adds like /3pid/add, behind the same password check: an access token alone must not be enough
   * to attach an address (which could then reset the password). Unvalidated is 403, per the spec.
   */
  legacyAdd(userId: string, req: AddThreepidRequest, ip: string): Promise<Record<string, never>> {
    return this.addBehindUia(userId, req, ip, Operation.addThreepidLegacy, () => new MatrixError(403, 'M_THREEPID_AUTH_FAILED', 'The address has not been validated yet'));
  }

  private async addBehindUia(userId: string, req: AddThreepidRequest, ip: string, operation: UiaOperation, pending: () => MatrixError): Promise<Record<string, never>> {
    if (!this.config.enable_3pid_changes) throw disabled();
    let threepid: ValidatedThreepid;
    return this.uia.perform(
      { auth: req.auth, operation, userId, flows: [['m.login.password']], ip, params: req.params },
      {
        check: async ({ params: creds, sessionId }) => {
          const consumed = await this.sessions.consume({ sid: creds.sid, clientSecret: creds.client_secret, medium: undefined, flow: 'add_threepid', consumer: sessionId });
          if (consumed === 'pending') throw pending();
          threepid = consumed;
        },
        run: async () => {
          const added = await this.store.threepids.add({
            medium: threepid.medium,
            address: threepid.address,
            user_id: userId,
            validated_ts: threepid.validated_ts,
            added_ts: this.clock.now(),
          });
          if (!added) throw inUse();
          return {};
        },
      },
    );
  }

  /**
   * POST /account/3pid/delete: unbinds the address at identity servers (see unbind), then removes
   * it from the account. When an identity server gives no answer the error is the client's and the
   * address stays, so that deleting it again finishes the unbind.
   */
  async delete(userId: string, req: UnbindRequest): Promise<{ id_server_unbind_result: IdServerUnbindResult }> {
    if (!this.config.enable_3pid_changes) throw disabled();
    const result = await this.identity.unbind(userId, req, req.id_server);
    await this.store.threepids.delete(userId, req.medium, req.address);
    return { id_server_unbind_result: result };
  }

  /**
   * POST /account/3pid/bind: asks a trusted identity server to bind the address it validated (its
   * own session) to this user, and remembers where the address is bound, to unbind it there later.
   * Other identity servers are refused, so clients cannot make Myelin send requests to arbitrary hosts.
   */
  async bind(userId: string, req: BindRequest): Promise<Record<string, never>> {
    const server = this.identity.requireTrusted(req.id_server);
    const bound = await bindAtIdentityServer(server, req.id_access_token, { sid: req.sid, client_secret: req.client_secret, mxid: userId }, this.config.identity_server_timeout);
    if (bound.medium !== undefined && bound.address !== undefined && bound.medium.length <= 32 && bound.address.length <= 512) {
      await this.identity.recordBinding(userId, server, bound.medium, canonicalOr(bound.medium, bound.address));
    }
    return {};
  }

  /**
   * POST /account/3pid/unbind: at `id_server` when given, else wherever the address was bound
   * through Myelin; the address stays on the account.
   */
  async unbind(userId: string, req: UnbindRequest): Promise<{ id_server_unbind_result: IdServerUnbindResult }> {
    return { id_server_unbind_result: await this.identity.unbind(userId, req, req.id_server) };
  }
}

/** The address in the form the account's 3PIDs are kept in, so that it is found again by it; as given when it has none. */
function canonicalOr(medium: string, address: string): string {
  try {
    return canonicaliseAddress(medium, address);
  } catch {
    return address.trim();
  }
}
