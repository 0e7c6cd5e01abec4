import { createHash } from 'node:crypto';
import type { Config } from '../../config/index.js';
import { PermanentDeliveryError, maskRecipient, type DeliveryChannel, type IdentityUnbindRequest, type Outbox } from '../../delivery/index.js';
import type { Store } from '../../storage/index.js';
import type { UserThreepidRow } from '../../storage/threepids.js';
import type { ThreepidBindingRow } from '../../storage/threepid-id-servers.js';
import type { JsonSigner } from '../rooms/event-hash.js';
import { notTrusted, trustedIdServer, unbindAtIdentityServer, type TrustedIdServer, type UnbindOutcome } from './identity-server.js';

export const IDENTITY_UNBIND_CHANNEL = 'identity-unbind';

/** The spec's `id_server_unbind_result`. */
export type IdServerUnbindResult = UnbindOutcome;

/** One address to unbind at one identity server (by the name bindings record). */
interface Target {
  idServer: string;
  medium: string;
  address: string;
}

const targetKey = (t: Target) => JSON.stringify([t.idServer, t.medium, t.address]);

/** The outbox's dedupe key of an unbind queued at deactivation: one per account, address and identity server, ever. */
export function identityUnbindDedupeKey(mxid: string, idServer: string, medium: string, address: string): string {
  return `identity-unbind:${createHash('sha256').update(JSON.stringify([mxid, idServer, medium, address])).digest('base64url')}`;
}

/** How each attempted target ended: definitive ('success', 'no-support', 'untrusted': never called) or 'retry'. */
type Attempt = UnbindOutcome | 'untrusted' | 'retry';

/** An account's unbinds tried before its deactivation is written; `finish` runs in that transaction. */
export interface PreparedUnbinding {
  /**
   * In the deactivation's transaction, with the 3PIDs it removed: forgets the account's bindings,
   * queues every unbind not definitively answered (and any bound meanwhile) in the outbox, and
   * says whether all of them were unbound now.
   */
  finish(tx: Store, removed: readonly UserThreepidRow[]): Promise<IdServerUnbindResult>;
}

/**
 * Unbinding addresses at identity servers (identity service API v2, POST /3pid/unbind, signed with
 * the server's key). Only identity servers in trusted_third_party_id_servers are ever called, each
 * call bounded by identity_server_timeout.
 */
export class IdentityUnbinding {
  constructor(
    private readonly config: Config,
    private readonly store: Store,
    /** The server's signing key (read on first use). */
    private readonly signingKey: () => JsonSigner,
    private readonly outbox: Outbox,
  ) {}

  /** The trusted identity server `idServer` names; 400 M_SERVER_NOT_TRUSTED for any other. */
  requireTrusted(idServer: string): TrustedIdServer {
    const server = trustedIdServer(this.config, idServer);
    if (!server) throw notTrusted();
    return server;
  }

  /** One signed unbind call: its outcome, or a MatrixError when there was no definitive answer. */
  call(server: TrustedIdServer, mxid: string, threepid: { medium: string; address: string }): Promise<UnbindOutcome> {
    return unbindAtIdentityServer({ server, origin: this.config.server_name, key: this.signingKey(), mxid, threepid, timeoutMs: this.config.identity_server_timeout });
  }

  /**
   * POST /account/3pid/unbind (and the unbind of /account/3pid/delete): at `idServer` when given
   * (trusted, or 400 M_SERVER_NOT_TRUSTED before anything is called), else at every identity server
   * the address was bound to through Myelin. 'success' when each of them unbound it; 'no-support'
   * when there was none to ask, or one does not unbind (or is no longer trusted, so is not asked).
   * Each definitive answer forgets that binding. When an identity server gives none (unreachable,
   * too slow, or its own error), that error is thrown once every call has ended, and the bindings
   * not unbound are kept.
   */
  async unbind(userId: string, threepid: { medium: string; address: string }, idServer?: string): Promise<IdServerUnbindResult> {
    const given = idServer !== undefined ? this.requireTrusted(idServer) : undefined;
    const names = given ? [given.name] : await this.store.threepidIdServers.servers(userId, threepid.medium, threepid.address);
    if (names.length === 0) return 'no-support';
    const results = await Promise.allSettled(
      names.map(async (name): Promise<UnbindOutcome> => {
        const server = given ?? trustedIdServer(this.config, name);
        if (!server) return 'no-support';
        const outcome = await this.call(server, userId, threepid);
        await this.store.threepidIdServers.remove({ user_id: userId, medium: threepid.medium, address: threepid.address, id_server: server.name });
        return outcome;
      }),
    );
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    return results.every((r) => r.status === 'fulfilled' && r.value === 'success') ? 'success' : 'no-support';
  }

  /** Records that the address was bound at this identity server through Myelin. */
  recordBinding(userId: string, server: TrustedIdServer, medium: string, address: string): Promise<void> {
    return this.store.threepidIdServers.add({ user_id: userId, medium, address, id_server: server.name });
  }

  /**
   * Deactivation, before its transaction: every bound address is unbound where it was bound, and,
   * when the request names `idServer`, every address of the account (bound or not) is unbound
   * there too. All calls run at once, each bounded by identity_server_timeout, so an identity
   * server that is down delays deactivation by that much at most; what it did not answer is queued
   * by `finish`. Throws 400 M_SERVER_NOT_TRUSTED, before anything is called, for an untrusted `idServer`.
   * Reads through `store`: the deactivation's caller may hold a transaction.
   */
  async prepareDeactivation(store: Store, userId: string, idServer: string | undefined): Promise<PreparedUnbinding> {
    const given = idServer !== undefined ? this.requireTrusted(idServer).name : undefined;
    const threepids = await store.threepids.list(userId);
    const bindings = await store.threepidIdServers.list(userId);
    const attempts = new Map<string, Attempt>();
    await Promise.all(
      targetsOf(threepids, bindings, given).map(async (target) => {
        attempts.set(targetKey(target), await this.attempt(userId, target));
      }),
    );
    return {
      finish: async (tx, removed) => {
        // Read again in the transaction: an address bound or added meanwhile is unbound too.
        const forgotten = await tx.threepidIdServers.removeAll(userId);
        const keys = new Set(attempts.keys());
        for (const target of targetsOf(removed, forgotten, given)) keys.add(targetKey(target));
        let allUnbound = true;
        for (const key of keys) {
          const [server, medium, address] = JSON.parse(key) as [string, string, string];
          const attempt = attempts.get(key) ?? 'retry';
          if (attempt !== 'success') allUnbound = false;
          if (attempt !== 'retry' || !trustedIdServer(this.config, server)) continue;
          const request: IdentityUnbindRequest = { channel: 'identity-unbind', id_server: server, mxid: userId, medium, address };
          await this.outbox.within(tx).enqueue(request, { dedupeKey: identityUnbindDedupeKey(userId, server, medium, address) });
        }
        return allUnbound ? 'success' : 'no-support';
      },
    };
  }

  private async attempt(userId: string, target: Target): Promise<Attempt> {
    const server = trustedIdServer(this.config, target.idServer);
    if (!server) return 'untrusted';
    try {
      return await this.call(server, userId, target);
    } catch {
      return 'retry';
    }
  }

  /** The outbox channel that retries the unbinds deactivation could not finish. */
  channel(): DeliveryChannel {
    return {
      render: (request) => {
        const r = request as IdentityUnbindRequest;
        return { id_server: r.id_server, mxid: r.mxid, medium: r.medium, address: r.address };
      },
      provider: (logger) => ({
        send: async (payload) => {
          const p = payload as Omit<IdentityUnbindRequest, 'channel'>;
          const server = trustedIdServer(this.config, p.id_server);
          if (!server) throw new PermanentDeliveryError(`identity server ${p.id_server} is no longer trusted`);
          // A MatrixError (unreachable, too slow, the identity server's own error) is retried.
          const outcome = await this.call(server, p.mxid, { medium: p.medium, address: p.address });
          if (outcome === 'no-support') logger.info({ id_server: p.id_server }, 'identity server does not support unbinding');
        },
        describe: (payload) => {
          const p = payload as Omit<IdentityUnbindRequest, 'channel'>;
          return { id_server: p.id_server, medium: p.medium, to: maskRecipient(p.address) };
        },
      }),
    };
  }
}

/**
 * What deactivation unbinds: each binding at its identity server, and with `given`, each address
 * (of the account or bound) at that one. Once each.
 */
function targetsOf(threepids: readonly { medium: string; address: string }[], bindings: readonly ThreepidBindingRow[], given: string | undefined): Target[] {
  const targets = new Map<string, Target>();
  const add = (target: Target) => targets.set(targetKey(target), target);
  for (const b of bindings) add({ idServer: b.id_server, medium: b.medium, address: b.address });
  if (given !== undefined) for (const t of [...threepids, ...bindings]) add({ idServer: given, medium: t.medium, address: t.address });
  return [...targets.values()];
}
