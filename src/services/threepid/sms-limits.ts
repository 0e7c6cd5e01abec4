import type { SmsConfig } from '../../config/sections/sms.js';
import { MatrixError } from '../../errors.js';
import type { Clock } from '../../clock.js';
import type { Store } from '../../storage/index.js';
import { RateLimiter } from '../ratelimiter.js';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

/** A bucket that holds `count` sends and refills them evenly over `windowMs`. */
function perWindow(count: number, windowMs: number) {
  return { per_second: (count * 1000) / windowMs, burst_count: count };
}

export const threepidDenied = () => new MatrixError(403, 'M_THREEPID_DENIED', 'Third-party identifier is not allowed');

/**
 * The abuse limits that SMS needs on top of the generic 3PID limits, because each message costs
 * money: which countries may get one, and how many may go to one number and to all numbers.
 * The counters live in the shared rate-limit table, so they hold across processes.
 */
export class SmsLimits {
  private readonly allowed: ReadonlySet<string> | undefined;
  private readonly denied: ReadonlySet<string>;

  constructor(
    private readonly config: SmsConfig,
    private readonly clock: Clock,
  ) {
    this.allowed = config.allowed_country_codes ? new Set(config.allowed_country_codes) : undefined;
    this.denied = new Set(config.denied_country_codes);
  }

  /**
   * Throws M_THREEPID_DENIED when the number's country (from the number itself, not from what the
   * client claimed) may not get SMS. A number of no country (e.g. +800) passes only an open list.
   */
  checkCountry(country: string | undefined): void {
    if (country !== undefined && this.denied.has(country)) throw threepidDenied();
    if (this.allowed && (country === undefined || !this.allowed.has(country))) throw threepidDenied();
  }

  /**
   * Counts one SMS about to be sent to `msisdn`, or throws M_LIMIT_EXCEEDED when the number's daily
   * cap or the homeserver's hourly cap is used up. Runs in the caller's unit of work (the one that
   * queues the message), so a refused or rolled-back send counts against neither cap.
   */
  async takeSend(work: Store, msisdn: string): Promise<void> {
    const limiter = new RateLimiter(work.rateLimits, this.clock);
    await limiter.take(`sms:number:${msisdn}`, perWindow(this.config.max_per_number_per_day, DAY_MS));
    await limiter.take('sms:global', perWindow(this.config.max_per_hour, HOUR_MS));
  }
}
