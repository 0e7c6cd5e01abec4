import type { Logger } from 'pino';
import { systemClock, type Clock } from '../clock.js';
import type { ClaimedMessage, OutboxRepo } from '../storage/outbox.js';
import { PermanentDeliveryError, type ChannelProvider } from './channels.js';
import type { PayloadSeal } from './payload-seal.js';

export interface WorkerOptions {
  /** How often to look for due messages queued by other processes. */
  pollIntervalMs: number;
  maxAttempts: number;
  /** Backoff: the first retry waits this long, each next one twice as long, up to maxRetryIntervalMs. */
  firstRetryMs: number;
  maxRetryIntervalMs: number;
  /** Sent and dead messages are deleted after this long. */
  retentionMs: number;
  /** How long a claimed message belongs to this worker; sends time out well before. */
  leaseMs: number;
  batchSize: number;
}

export const DEFAULT_WORKER_OPTIONS: WorkerOptions = {
  pollIntervalMs: 5_000,
  maxAttempts: 20,
  firstRetryMs: 1_000,
  maxRetryIntervalMs: 5 * 60_000,
  retentionMs: 7 * 86_400_000,
  leaseMs: 2 * 60_000,
  batchSize: 100,
};

/** What became of one attempt at sending a message. */
export type DeliveryOutcome = 'sent' | 'retried' | 'failed';

const PRUNE_EVERY_MS = 10 * 60_000;
const MIN_TIMER_MS = 25;

/** Error text safe to store and log: first line only, bounded. */
function describeError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return (message.split(/\r?\n/)[0] ?? '').slice(0, 300);
}

/**
 * Sends what the outbox holds. It runs when poked (right after a message is queued in this process),
 * when the next retry is due, and every poll interval (for messages queued by other processes).
 * It claims only the channels it has a provider for, so processes with different channels
 * configured can share one database. Due times are read from the outbox's own clock: wall-clock
 * time, unless a test injects one to step through retries (the homeserver's clock, which tests move
 * to expire sessions, must not stall delivery or end a lease mid-send).
 */
export class OutboxWorker {
  private readonly providers = new Map<string, ChannelProvider>();
  private readonly options: WorkerOptions;
  private logger: Logger | undefined;
  private stopped = true;
  private running: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private lastPrune = 0;
  private readonly observers: ((channel: string, outcome: DeliveryOutcome) => void)[] = [];

  constructor(
    private readonly repo: OutboxRepo,
    private readonly seal: PayloadSeal,
    options: Partial<WorkerOptions> = {},
    private readonly clock: Clock = systemClock,
  ) {
    this.options = { ...DEFAULT_WORKER_OPTIONS, ...options };
  }

  get isRunning(): boolean {
    return !this.stopped;
  }

  /** Starts sending with these providers (channel -> provider). Returns the stopper. */
  start(logger: Logger, providers: Map<string, ChannelProvider>): () => Promise<void> {
    this.logger = logger;
    for (const [channel, provider] of providers) this.providers.set(channel, provider);
    this.stopped = false;
    this.poke();
    return () => this.stop();
  }

  /** Calls `observer` after each attempt: sent, failed and to be retried, or given up on (e.g. for metrics). */
  observe(observer: (channel: string, outcome: DeliveryOutcome) => void): void {
    this.observers.push(observer);
  }

  /**
   * Claims nothing more and waits for the sends in flight to be recorded (sent, or released for a
   * retry), at most `graceMs`. A send still running after that keeps its lease: when the lease ends
   * the message is due again, for this process after a restart or for another one.
   */
  async stop(graceMs = Infinity): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.running && Number.isFinite(graceMs)) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
      await Promise.race([this.running, late]);
      clearTimeout(timer);
    } else {
      await this.running;
    }
    for (const provider of this.providers.values()) await provider.close?.();
    this.providers.clear();
  }

  /** Looks for due messages now (coalesced with a run in progress). */
  poke(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.drain().finally(() => {
      this.running = undefined;
      void this.schedule();
    });
  }

  /**
   * Sends until nothing is due. Up to batchSize messages are in flight at once; more are claimed as
   * soon as half of them are done, so that a slow message does not hold up the queue.
   */
  private async drain(): Promise<void> {
    const batch = this.options.batchSize;
    const inflight = new Set<Promise<void>>();
    do {
      this.again = false;
      while (!this.stopped) {
        if (inflight.size > batch / 2) {
          await Promise.race(inflight);
          continue;
        }
        const room = batch - inflight.size;
        let claimed: ClaimedMessage[];
        try {
          claimed = await this.repo.claimDue(this.clock.now(), this.options.leaseMs, room, [...this.providers.keys()]);
        } catch (err) {
          this.logger?.warn({ err: describeError(err) }, 'outbox: cannot read the queue');
          break;
        }
        for (const message of claimed) {
          const sending: Promise<void> = this.deliver(message)
            .catch((err: unknown) => this.logger?.error({ id: message.id, err: describeError(err) }, 'outbox: unexpected failure'))
            .finally(() => inflight.delete(sending));
          inflight.add(sending);
        }
        if (claimed.length < room) break;
      }
      await Promise.all(inflight);
    } while (this.again && !this.stopped);
    await this.pruneSometimes();
  }

  private async schedule(): Promise<void> {
    if (this.stopped) return;
    let delay = this.options.pollIntervalMs;
    try {
      const next = await this.repo.nextDueTs([...this.providers.keys()]);
      if (next !== undefined) delay = Math.min(delay, next - this.clock.now());
    } catch {
      // The database is unreachable: try again after the poll interval.
    }
    if (this.stopped || this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.poke(), Math.max(MIN_TIMER_MS, delay));
    this.timer.unref();
  }

  private retryDelay(attempt: number): number {
    const base = Math.min(this.options.maxRetryIntervalMs, this.options.firstRetryMs * 2 ** Math.min(attempt - 1, 30));
    // A little jitter, so that messages that failed together do not all retry together.
    return Math.round(base * (0.85 + Math.random() * 0.15));
  }

  private async deliver(message: ClaimedMessage): Promise<void> {
    const log = { id: message.id, channel: message.channel, attempt: message.attempts };
    const provider = this.providers.get(message.channel);
    let payload: unknown;
    try {
      payload = JSON.parse(this.seal.open(message.id, message.payload));
    } catch {
      await this.fail(message, log, 'stored message cannot be decrypted or is not valid JSON', true);
      return;
    }
    if (!provider) {
      // Only claimed channels have providers; this cannot happen unless a provider was removed.
      await this.fail(message, log, `no provider for channel '${message.channel}' in this process`, false);
      return;
    }
    let where: Record<string, unknown> = {};
    try {
      where = provider.describe(payload);
      await provider.send(payload, { id: message.id, attempt: message.attempts });
    } catch (err) {
      await this.fail(message, { ...log, ...where }, describeError(err), err instanceof PermanentDeliveryError);
      return;
    }
    this.tell(message.channel, 'sent');
    try {
      const ours = await this.repo.markSent(message, this.clock.now());
      if (ours) this.logger?.info({ ...log, ...where }, 'outbox: message sent');
      else this.logger?.warn({ ...log, ...where }, 'outbox: message sent after its lease ended; it may be sent twice');
    } catch (err) {
      // Sent, but not recorded: when the lease ends it will be sent again. Better twice than never.
      this.logger?.error({ ...log, ...where, err: describeError(err) }, 'outbox: message sent but not marked sent');
    }
  }

  private async fail(message: ClaimedMessage, log: Record<string, unknown>, error: string, permanent: boolean): Promise<void> {
    try {
      if (permanent || message.attempts >= this.options.maxAttempts) {
        await this.repo.markDead(message, this.clock.now(), error);
        this.tell(message.channel, 'failed');
        this.logger?.error({ ...log, error }, 'outbox: giving up on message');
      } else {
        const delay = this.retryDelay(message.attempts);
        await this.repo.markRetry(message, this.clock.now() + delay, error);
        this.tell(message.channel, 'retried');
        this.logger?.warn({ ...log, error, retry_in_ms: delay }, 'outbox: sending failed, will retry');
      }
    } catch (err) {
      this.logger?.error({ ...log, err: describeError(err) }, 'outbox: cannot record a failed send');
    }
  }

  private tell(channel: string, outcome: DeliveryOutcome): void {
    for (const observer of this.observers) observer(channel, outcome);
  }

  private async pruneSometimes(): Promise<void> {
    const now = this.clock.now();
    if (now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    try {
      await this.repo.prune(now - this.options.retentionMs);
    } catch (err) {
      this.logger?.warn({ err: describeError(err) }, 'outbox: prune failed');
    }
  }
}
