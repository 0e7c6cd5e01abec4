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
/** How long a revocation waits to hear its own notice back before the request is answered anyway. */
const ECHO_WAIT_MS = 1_000;
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
 * - The request that revoked waits (up to ECHO_WAIT_MS) until its process hears its own notice
 *   back before it is answered: PostgreSQL signals every listening process at the same commit.
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
  /** When the newest of this process's notices that came back was sent. */
  private heardAt = -Infinity;
  private seq = 0;
  /** This process's notices not yet back, and when each was sent. */
  private readonly sent = new Map<number, number>();
  /** Committed revocations waiting to hear their notice back. */
  private readonly awaiting = new Map<number, () => void>();
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
    await work.tokens.notifyTokens(encodeTokenNotice({ origin: this.origin, seq, userId }));
    work.afterCommit(() => {
      this.invalidate(userId);
      this.awaitEcho(seq);
    });
  }

  /** Resolves once every revocation committed here has been heard back (or ECHO_WAIT_MS passed). */
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
      this.awaiting.get(notice.seq)?.();
    }
    if (notice.userId !== undefined) this.invalidate(notice.userId);
  }

  onListening(listening: boolean): void {
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
    for (const done of [...this.awaiting.values()]) done();
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
    const seq = this.send();
    this.store.tokens.notifyTokens(encodeTokenNotice({ origin: this.origin, seq })).catch(() => undefined);
  }

  private awaitEcho(seq: number): void {
    // Already back (notices can overtake the COMMIT's answer), or not listening: nothing to wait for.
    if (!this.listening || !this.sent.has(seq)) return;
    const waiting = new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.awaiting.delete(seq);
        resolve();
      };
      const timer = setTimeout(done, ECHO_WAIT_MS);
      this.awaiting.set(seq, done);
    });
    this.pending.add(waiting);
    void waiting.then(() => this.pending.delete(waiting));
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

/** The access-token cache for a process on PostgreSQL; none on SQLite, nor with `access_token_cache.max_age: 0`. */
export function createTokenCache(config: Config, store: Store): TokenCache | undefined {
  const { max_age: maxAgeMs, max_entries: maxEntries } = config.access_token_cache;
  if (!('host' in config.database.args) || maxAgeMs <= 0 || maxEntries <= 0) return undefined;
  return new TokenCache(store, { maxAgeMs, maxEntries });
}
