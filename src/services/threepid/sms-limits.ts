import type { SmsConfig } from '../../config/sections/sms.js';
import { MatrixError } from '../../errors.js';
import type { Clock } from '../../clock.js';
import type { Store } from '../../storage/index.js';
import { RateLimiter, perWindow } from '../ratelimiter.js';
import type { ParsedMsisdn } from './address.js';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

export const threepidDenied = (why = 'Third-party identifier is not allowed') => new MatrixError(403, 'M_THREEPID_DENIED', why);

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
   * Throws M_THREEPID_DENIED when the number may not get an SMS: its country (from the number
   * itself, not from what the client claimed) is denied or not allowed, or it is not a mobile
   * number. SMS pumping sends codes to numbers whose operator pays the sender's victim per message
   * received (premium-rate, shared-cost, satellite, international networks such as +882/+883,
   * toll-free ranges); a person receives codes on a mobile. Non-geographic numbers (+800, +881,
   * ...) are all refused: some are typed MOBILE (satellite phones) and cost the most.
   */
  checkNumber(number: Pick<ParsedMsisdn, 'country' | 'type'>): void {
    const { country, type } = number;
    if (country === undefined) throw threepidDenied('Phone numbers that belong to no country cannot receive codes here');
    if (this.denied.has(country)) throw threepidDenied();
    if (this.allowed && !this.allowed.has(country)) throw threepidDenied();
    if (type !== 'MOBILE' && type !== 'FIXED_LINE_OR_MOBILE') throw threepidDenied('Only mobile phone numbers can receive codes here');
  }

  /**
   * Counts one SMS about to be sent to `msisdn` (or that would be, but for a refusal kept quiet by
   * request_token_inhibit_3pid_errors), or throws M_LIMIT_EXCEEDED when the number's daily cap or
   * the homeserver's hourly cap is used up. Runs in the caller's unit of work (the one that queues
   * the message), so a refused or rolled-back send counts against neither cap.
   */
  async takeSend(work: Store, msisdn: string): Promise<void> {
    const limiter = new RateLimiter(work.rateLimits, this.clock);
    await limiter.take(`sms:number:${msisdn}`, perWindow(this.config.max_per_number_per_day, DAY_MS));
    await limiter.take('sms:global', perWindow(this.config.max_per_hour, HOUR_MS));
  }
}
