import { isIP } from 'node:net';
import type { Clock } from '../clock.js';
import type { RateLimitConfig } from '../config/schema.js';
import { limitExceeded } from '../errors.js';
import type { RateLimitsRepo } from '../storage/ratelimits.js';

/** A bucket that holds `count` tokens and refills them evenly over `windowMs`. */
export function perWindow(count: number, windowMs: number): RateLimitConfig {
  return { per_second: (count * 1000) / windowMs, burst_count: count };
}

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

  /**
   * Takes a token for `key`, or throws M_LIMIT_EXCEEDED with how long to wait. `repo`: the store's
   * (e.g. a transaction's, so the take commits with the change it allows) instead of the limiter's.
   */
  async take(key: string, limit: RateLimitConfig, repo = this.repo): Promise<void> {
    const { interval, tolerance } = this.shape(limit);
    const now = this.clock.now();
    let wait = await repo.take(key, now, interval, tolerance);
    // In a transaction on PostgreSQL the take waits for the bucket's row while another transaction
    // of the same user holds it; meanwhile later requests may have moved the bucket on, and judged
    // at its arrival time this one would be refused for the wait alone. It is judged again at the
    // time it reached the bucket (now holding its row, so nothing moves it in between).
    const reached = this.clock.now();
    if (wait > 0 && reached > now) wait = await repo.take(key, reached, interval, tolerance);
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

/** The eight 16-bit groups of a valid IPv6 address (dotted IPv4 tail included). */
function ipv6Groups(address: string): number[] {
  const toGroups = (part: string): number[] =>
    part === ''
      ? []
      : part.split(':').flatMap((g) => {
          if (!g.includes('.')) return [parseInt(g, 16)];
          const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
          return [(a << 8) | b, (c << 8) | d];
        });
  const gap = address.indexOf('::');
  if (gap < 0) return toGroups(address);
  const head = toGroups(address.slice(0, gap));
  const tail = toGroups(address.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/**
 * The client address per-IP limits count under. An IPv6 client counts under its /64: one host
 * picks freely among the 2^64 addresses of its network (privacy addresses change daily), and a
 * /64 is the smallest network given to one site, so per address it could start afresh at will. A
 * second bucket per address would add nothing: with the same limit the /64's bucket always empties
 * first. IPv4-mapped IPv6 (::ffff:a.b.c.d, as a dual-stack socket reports IPv4 clients) is IPv4.
 */
export function addressBucket(ip: string): string {
  const address = ip.split('%')[0]!.toLowerCase();
  const family = isIP(address);
  if (family !== 6) return address;
  const g = ipv6Groups(address);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`;
  return `${g.slice(0, 4).map((x) => x.toString(16)).join(':')}::/64`;
}
