import { performance } from 'node:perf_hooks';
import type { Config } from '../config/index.js';
import { randomToken } from '../crypto/tokens.js';
import type { Store } from '../storage/index.js';
import { encodeTokenNotice, type TokenNotice, type TokenNoticeListener } from '../storage/stream-channel.js';
import type { TokenOwner } from '../storage/tokens.js';

export interface TokenCacheOptions {
  /** How long an answer from the database may be reused. */
  maxAgeMs: number;
  maxEntries: number;
}

/** How often a process sends itself a notice, to know that it still hears the others. */
const HEARTBEAT_MS = 1_000;
/** Answers come from memory only while a notice sent no longer ago than this has come back. */
const HEARD_WITHIN_MS = 3_000;
/**
 * How long after its commit a revocation waits at most for every process to acknowledge it. Past
 * HEARD_WITHIN_MS, a process that has not heard it no longer answers from memory (see below).
 */
const DELIVERY_WAIT_MS = HEARD_WITHIN_MS + 100;
/** Other processes not heard from for this long are forgotten. */
const FORGET_PEER_MS = 10_000;
/** Notices not back after this long are forgotten (their transaction rolled back, or they were lost). */
const FORGET_SENT_MS = 10_000;

interface Entry {
  owner: TokenOwner;
  at: number;
}

/**
 * Who an access token belongs to, kept in memory for a short while so that most requests on
 * PostgreSQL make no round trip to learn it. Keyed by the token's hash, bounded in size
 * (`maxEntries`, oldest first out) and in age (`maxAgeMs`); a token's expiry is still checked on
 * every request against the row as read, so it is honoured to the millisecond.
 *
 * The guarantee that a revoked token is refused at once by every process holds as follows.
 * - Every change to a user's tokens (logout, device deletion, password change that logs devices
 *   out, deactivation, a reused device ID at login, refresh-token rotation) sends a notice on the
 *   tokens channel in its own transaction, so every process hears it exactly when it commits;
 *   the sending process forgets the user's entries as it commits, every other one when it hears.
 *   Anything new that deletes tokens or changes what the lookup reads (users.deactivated,
 *   users.is_guest) must call revoked() in its transaction too.
 * - The request that revoked is answered only once every other process has acknowledged the notice
 *   (each sends an ack after forgetting the user), or DELIVERY_WAIT_MS after the commit. Hearing
 *   its own notice back is not enough: PostgreSQL signals every listener at the commit, but each
 *   process reads its connection in its own time, and a busy one can still be answering from
 *   memory when the next request reaches it. Whom to wait for is settled when its own notice comes
 *   back, so every notice committed before it has been heard: the processes heard within
 *   HEARD_WITHIN_MS, a set that holds every process still answering from memory (each sends a
 *   heartbeat). One that does not acknowledge in time stops answering from memory by the end of the
 *   wait, since every heartbeat it could hear by then was committed after the revocation.
 * - An entry read from the database is kept only if no notice (and no loss of the connection)
 *   came between the read and the keeping (a generation count), so a read that raced a revocation
 *   is not kept.
 * - Answers come from memory only while the LISTEN connection is up and a notice this process sent
 *   itself no more than HEARD_WITHIN_MS ago has come back (a heartbeat every HEARTBEAT_MS): notices
 *   arrive in commit order, so everything committed before it has been heard. A connection seen
 *   to drop clears the cache, which stays off until it listens again; one that dies silently
 *   stops answers from memory within HEARD_WITHIN_MS.
 */
export class TokenCache implements TokenNoticeListener {
  /** Tells this process's notices apart from the others'. */
  readonly origin = randomToken(9);
  private readonly entries = new Map<string, Entry>();
  private readonly byUser = new Map<string, Set<string>>();
  private generation = 0;
  private listening = false;
  private closed = false;
  /** When the newest of this process's notices that came back was sent. */
  private heardAt = -Infinity;
  private seq = 0;
  /** This process's notices not yet back, and when each was sent. */
  private readonly sent = new Map<number, number>();
  /** Committed revocations waiting to be heard back and acknowledged. */
  private readonly awaiting = new Map<number, Delivery>();
  /** The other processes on this database, and when each was last heard. */
  private readonly peers = new Map<string, number>();
  private readonly pending = new Set<Promise<void>>();
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly options: TokenCacheOptions,
  ) {}

  /** Entries held (expired ones included until they are next looked at or pushed out). */
  get size(): number {
    return this.entries.size;
  }

  /** Whether answers come from memory right now. */
  get serving(): boolean {
    return this.listening && performance.now() - this.heardAt <= HEARD_WITHIN_MS;
  }

  /** The token's owner as last read, if it may be used. */
  get(tokenHash: string): TokenOwner | undefined {
    const entry = this.entries.get(tokenHash);
    if (entry === undefined || !this.serving) return undefined;
    if (performance.now() - entry.at > this.options.maxAgeMs) {
      this.remove(tokenHash, entry.owner.user_id);
      return undefined;
    }
    return entry.owner;
  }

  /** Taken before reading a token from the database, and given back to put(). */
  mark(): number {
    return this.generation;
  }

  /** Keeps what was read, unless a notice (or a loss of the connection) came since `mark`. */
  put(tokenHash: string, owner: TokenOwner, mark: number): void {
    if (!this.listening || mark !== this.generation || this.options.maxEntries <= 0) return;
    const previous = this.entries.get(tokenHash);
    if (previous) this.remove(tokenHash, previous.owner.user_id);
    while (this.entries.size >= this.options.maxEntries) {
      const [oldest, entry] = this.entries.entries().next().value as [string, Entry];
      this.remove(oldest, entry.owner.user_id);
    }
    this.entries.set(tokenHash, { owner, at: performance.now() });
    let hashes = this.byUser.get(owner.user_id);
    if (!hashes) this.byUser.set(owner.user_id, (hashes = new Set()));
    hashes.add(tokenHash);
  }

  /**
   * Call in the transaction that changes a user's tokens: every process, this one included,
   * forgets that user's entries when it commits. Then await delivered() once it has committed.
   */
  async revoked(work: Store, userId: string): Promise<void> {
    const seq = this.send();
    const delivery = new Delivery();
    this.awaiting.set(seq, delivery);
    await work.tokens.notifyTokens(encodeTokenNotice({ origin: this.origin, seq, userId }));
    work.afterCommit(() => {
      this.invalidate(userId);
      this.awaitDelivery(seq, delivery);
    });
  }

  /** Resolves once every revocation committed here has reached every process (or DELIVERY_WAIT_MS passed). */
  async delivered(): Promise<void> {
    if (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  onTokenNotice(notice: TokenNotice | undefined): void {
    // A format this process cannot read (another version, during an upgrade): whose tokens is unknown.
    if (notice === undefined) return this.clear();
    if (notice.origin === this.origin) {
      const sentAt = this.sent.get(notice.seq);
      if (sentAt !== undefined) {
        this.sent.delete(notice.seq);
        if (sentAt > this.heardAt) this.heardAt = sentAt;
      }
      this.awaiting.get(notice.seq)?.heardBack(this.livePeers());
      if (notice.userId !== undefined) this.invalidate(notice.userId);
      return;
    }
    if (notice.bye) {
      // Nothing to wait for from a process that has stopped.
      this.peers.delete(notice.origin);
      for (const delivery of this.awaiting.values()) delivery.acknowledged(notice.origin);
      return;
    }
    this.peers.set(notice.origin, performance.now());
    if (notice.ack?.origin === this.origin) this.awaiting.get(notice.ack.seq)?.acknowledged(notice.origin);
    if (notice.userId !== undefined) {
      this.invalidate(notice.userId);
      this.acknowledge(notice.origin, notice.seq);
    }
  }

  /**
   * At shutdown, once no request is being answered: stops answering from memory, then tells the
   * other processes, so that their revocations stop waiting for this one's acknowledgement.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.onListening(false);
    this.closed = true;
    await this.store.tokens.notifyTokens(encodeTokenNotice({ origin: this.origin, seq: this.send(), bye: true })).catch(() => undefined);
  }

  onListening(listening: boolean): void {
    if (this.closed) return;
    this.generation++;
    this.listening = listening;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    if (listening) {
      this.heartbeat = setInterval(() => this.ping(), HEARTBEAT_MS);
      this.heartbeat.unref();
      this.ping();
      return;
    }
    // Notices may be missed from now on: nothing from memory until the connection listens again.
    this.clear();
    this.heardAt = -Infinity;
    this.sent.clear();
    // Not hearing its own notices back, this process cannot learn who heard a revocation: the
    // ones waiting, and any committed meanwhile, wait out DELIVERY_WAIT_MS if others may be caching.
    if (this.livePeers().size === 0) for (const delivery of this.awaiting.values()) delivery.end();
  }

  private send(): number {
    const seq = ++this.seq;
    const now = performance.now();
    this.sent.set(seq, now);
    for (const [old, at] of this.sent) {
      if (now - at < FORGET_SENT_MS) break;
      this.sent.delete(old);
    }
    return seq;
  }

  private ping(): void {
    const now = performance.now();
    for (const [origin, at] of this.peers) if (now - at > FORGET_PEER_MS) this.peers.delete(origin);
    // Those of transactions that rolled back (a committed one ends within DELIVERY_WAIT_MS).
    for (const [seq, delivery] of this.awaiting) {
      if (now - delivery.startedAt > FORGET_SENT_MS) {
        delivery.end();
        this.awaiting.delete(seq);
      }
    }
    this.notify({ origin: this.origin, seq: this.send() });
  }

  private acknowledge(origin: string, seq: number): void {
    this.notify({ origin: this.origin, seq: this.send(), ack: { origin, seq } });
  }

  private notify(notice: TokenNotice): void {
    this.store.tokens.notifyTokens(encodeTokenNotice(notice)).catch(() => undefined);
  }

  /** The other processes that may be answering from memory. */
  private livePeers(): Set<string> {
    const now = performance.now();
    const live = new Set<string>();
    for (const [origin, at] of this.peers) if (now - at <= HEARD_WITHIN_MS) live.add(origin);
    return live;
  }

  /** After the commit: the revoking request waits (see delivered()) until the notice reached every process. */
  private awaitDelivery(seq: number, delivery: Delivery): void {
    // Neither hearing notices nor knowing of another process: nothing to wait for.
    if (!this.listening && !delivery.heardBackYet && this.livePeers().size === 0) delivery.end();
    const timer = setTimeout(() => delivery.end(), DELIVERY_WAIT_MS);
    const waiting: Promise<void> = delivery.finished.then(() => {
      clearTimeout(timer);
      this.awaiting.delete(seq);
      this.pending.delete(waiting);
    });
    this.pending.add(waiting);
  }

  private invalidate(userId: string): void {
    this.generation++;
    const hashes = this.byUser.get(userId);
    if (!hashes) return;
    this.byUser.delete(userId);
    for (const hash of hashes) this.entries.delete(hash);
  }

  private remove(tokenHash: string, userId: string): void {
    this.entries.delete(tokenHash);
    const hashes = this.byUser.get(userId);
    if (hashes?.delete(tokenHash) && hashes.size === 0) this.byUser.delete(userId);
  }

  private clear(): void {
    this.generation++;
    this.entries.clear();
    this.byUser.clear();
  }
}

/** One revocation on its way to the other processes (from before its commit: notices can overtake the COMMIT's answer). */
class Delivery {
  readonly startedAt = performance.now();
  /** Who must still acknowledge, known once its own notice is back. */
  private waitingFor: Set<string> | undefined;
  private readonly acked = new Set<string>();
  private finish!: () => void;
  readonly finished = new Promise<void>((resolve) => (this.finish = resolve));

  get heardBackYet(): boolean {
    return this.waitingFor !== undefined;
  }

  heardBack(peers: Set<string>): void {
    if (this.waitingFor) return;
    for (const origin of this.acked) peers.delete(origin);
    this.waitingFor = peers;
    if (peers.size === 0) this.end();
  }

  acknowledged(origin: string): void {
    if (!this.waitingFor) this.acked.add(origin);
    else if (this.waitingFor.delete(origin) && this.waitingFor.size === 0) this.end();
  }

  end(): void {
    this.finish();
  }
}

/** The access-token cache for a process on PostgreSQL; none on SQLite, nor with `access_token_cache.max_age: 0`. */
export function createTokenCache(config: Config, store: Store): TokenCache | undefined {
  const { max_age: maxAgeMs, max_entries: maxEntries } = config.access_token_cache;
  if (!('host' in config.database.args) || maxAgeMs <= 0 || maxEntries <= 0) return undefined;
  return new TokenCache(store, { maxAgeMs, maxEntries });
}
