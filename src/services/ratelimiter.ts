import type { Clock } from '../clock.js';
import type { RateLimitConfig } from '../config/schema.js';
import { limitExceeded } from '../errors.js';
import type { RateLimitsRepo } from '../storage/ratelimits.js';

/** Synapse-style token buckets ({per_second, burst_count}) over a shared store. */
export class RateLimiter {
  constructor(
    private readonly repo: RateLimitsRepo,
    private readonly clock: Clock,
  ) {}

  private shape(limit: RateLimitConfig): { interval: number; tolerance: number } {
    // Whole milliseconds: the database stores integers.
    const interval = Math.max(1, Math.round(1000 / limit.per_second));
    return { interval, tolerance: interval * (limit.burst_count - 1) };
  }

  /** Takes a token for `key`, or throws M_LIMIT_EXCEEDED with how long to wait. */
  async take(key: string, limit: RateLimitConfig): Promise<void> {
    const { interval, tolerance } = this.shape(limit);
    const wait = await this.repo.take(key, this.clock.now(), interval, tolerance);
    if (wait > 0) throw limitExceeded(wait);
  }

  /**
   * Takes a token for each key in turn, as successive take() calls would (a refused key stops the
   * rest), but in one commit where the store allows it.
   */
  async takeAll(keys: string[], limit: RateLimitConfig): Promise<void> {
    const { interval, tolerance } = this.shape(limit);
    const wait = await this.repo.takeAll(keys, this.clock.now(), interval, tolerance);
    if (wait > 0) throw limitExceeded(wait);
  }

  /** Throws M_LIMIT_EXCEEDED when `key` has no token left, without taking one. */
  async check(key: string, limit: RateLimitConfig): Promise<void> {
    const { interval, tolerance } = this.shape(limit);
    const wait = await this.repo.wait(key, this.clock.now(), interval, tolerance);
    if (wait > 0) throw limitExceeded(wait);
  }

  /** Takes a token if there is one; never throws. For counting failures after the fact. */
  async record(key: string, limit: RateLimitConfig): Promise<void> {
    const { interval, tolerance } = this.shape(limit);
    await this.repo.take(key, this.clock.now(), interval, tolerance);
  }

  reset(key: string): Promise<void> {
    return this.repo.reset(key);
  }
}
