import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../../clock.js';
import type { Outbox } from '../../delivery/index.js';
import type { Throttle } from '../../storage/email-notifs.js';
import type { Store } from '../../storage/index.js';
import type { PushNotificationRow } from '../../storage/push.js';
import type { PusherRow } from '../../storage/pushers.js';
import type { NotificationMailer } from './email-mail.js';

/** Synapse's throttle: a room's next mail waits the delay, then a day; a quiet half day resets it. */
const THROTTLE_MULTIPLIER = 144;
const THROTTLE_MAX_MS = 24 * 3_600_000;
const THROTTLE_RESET_AFTER_MS = 12 * 3_600_000;
/** At most this many notifications in one mail (Synapse's limit); the rest go in the next. */
const MAX_PER_MAIL = 20;
/** How often to look for notifications that other processes recorded. */
const POLL_MS = 30_000;
/** A notification recorded just before a poke is due at most this long after the poke's delay. */
const SLACK_MS = 50;

/**
 * Email pushers (Synapse's emailpusher): a notification still unread `delayMs` after it arrived,
 * in a room whose throttle has run out, has one mail queued in the outbox telling of every unread
 * notification of the pusher not mailed yet (in any room). The pusher's progress moves in the
 * same transaction as the mail is queued, only if no other process moved it first: each
 * notification is mailed once, whatever restarts. Notifications read by then are left out; with
 * none left, nothing is mailed.
 */
export class EmailNotifier {
  private running: Promise<void> | undefined;
  /** When a pass is wanted that the running one may not cover. */
  private wantedAt: number | undefined;
  private stopped = true;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = 0;
  private logger: Logger | undefined;

  constructor(
    private readonly store: Store,
    private readonly mailer: NotificationMailer,
    private readonly outbox: Outbox,
    private readonly clock: Clock,
    private readonly delayMs: number,
  ) {}

  start(logger: Logger): () => Promise<void> {
    this.logger = logger;
    this.stopped = false;
    this.wakeAt(this.clock.now());
    return () => this.stop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /**
   * New notifications were recorded: none of them can be due before the delay has passed, so a
   * pass is wanted then, not now (a busy server's pokes cost no reads).
   */
  poke(): void {
    this.wakeAt(this.clock.now() + this.delayMs + SLACK_MS);
  }

  /** Runs a pass at `at`, unless one is set for earlier. */
  private wakeAt(at: number): void {
    if (this.stopped) return;
    if (this.running) {
      this.wantedAt = Math.min(this.wantedAt ?? at, at);
      return;
    }
    if (this.timer && this.timerAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.run(), Math.max(0, at - this.clock.now()));
    this.timer.unref();
  }

  private run(): void {
    if (this.stopped || this.running) return;
    this.timer = undefined;
    let next = this.clock.now() + POLL_MS;
    this.running = this.pass()
      .then((due) => {
        if (due !== undefined) next = Math.min(next, due);
      })
      .catch((err: unknown) => this.logger?.warn({ err: err instanceof Error ? err.message : String(err) }, 'email notifications: a pass failed; will retry'))
      .finally(() => {
        this.running = undefined;
        const wanted = this.wantedAt;
        this.wantedAt = undefined;
        this.wakeAt(Math.min(next, wanted ?? next));
      });
  }

  /** Mails what is due; returns when the next notification falls due (undefined: none is waiting). */
  async pass(): Promise<number | undefined> {
    // Notifications commit with their events, so everything up to the stream's head is recorded.
    const upto = await this.store.streams.head();
    let soonest: number | undefined;
    for (const pusher of await this.store.emailNotifs.withUnread(upto)) {
      if (this.stopped) break;
      const due = await this.processPusher(pusher, upto);
      if (due !== undefined && (soonest === undefined || due < soonest)) soonest = due;
    }
    return soonest;
  }

  /** Mails this pusher's notifications if one is due; else returns when one will be. */
  private async processPusher(pusher: PusherRow, upto: number): Promise<number | undefined> {
    const from = Number(pusher.mailed_pos);
    const unread = await this.store.emailNotifs.unread(pusher.user_id, from, upto, MAX_PER_MAIL);
    if (unread.length === 0) return undefined;
    const throttles = await this.store.emailNotifs.throttles(pusher);
    const now = this.clock.now();
    let soonest: number | undefined;
    for (const notification of unread) {
      const throttle = throttles.get(notification.room_id);
      const readyAt = Math.max(Number(notification.ts) + this.delayMs, throttle ? throttle.last_sent_ts + throttle.throttle_ms : 0);
      if (readyAt <= now) {
        await this.mail(pusher, unread, notification, throttles, now);
        // What is left (beyond this mail's notifications) is looked at in the next pass.
        return now;
      }
      if (soonest === undefined || readyAt < soonest) soonest = readyAt;
    }
    return soonest;
  }

  private async mail(pusher: PusherRow, unread: PushNotificationRow[], due: PushNotificationRow, throttles: Map<string, Throttle>, now: number): Promise<void> {
    const from = Number(pusher.mailed_pos);
    const to = Math.max(...unread.map((n) => Number(n.stream_pos)));
    const throttle = throttles.get(due.room_id);
    const mail = await this.mailer.compose(pusher, unread, {
      room_id: due.room_id,
      now,
      received_at: Number(due.ts),
      delay_before_mail_ms: this.delayMs,
      last_sent_ts: throttle?.last_sent_ts ?? 0,
      throttle_ms: throttle?.throttle_ms ?? 0,
    });
    const next = await this.nextThrottles(pusher.user_id, unread, throttles, now);
    const queued = await this.store.transaction(async (tx) => {
      if (!(await tx.emailNotifs.advance(pusher, from, to))) return false;
      if (!mail) return false;
      await this.outbox.within(tx).enqueue(
        { channel: 'email', to: pusher.pushkey, template: 'notif_mail', subject: mail.subject, vars: mail.vars, unsubscribeLink: mail.unsubscribeLink },
        { dedupeKey: `notif:${pusherHash(pusher)}:${to}` },
      );
      for (const [roomId, t] of next) await tx.emailNotifs.setThrottle(pusher, roomId, t);
      return true;
    });
    if (queued) this.logger?.info({ user_id: pusher.user_id, notifications: unread.length, rooms: next.size }, 'email notifications: mail queued');
  }

  /**
   * Each room of the mail: the throttle starts at the delay and is multiplied with each mail, up to
   * a day; it starts again when the room's notification came more than half a day after the one
   * before it.
   */
  private async nextThrottles(userId: string, unread: PushNotificationRow[], throttles: Map<string, Throttle>, now: number): Promise<Map<string, Throttle>> {
    const latest = new Map<string, PushNotificationRow>();
    for (const n of unread) latest.set(n.room_id, n);
    const next = new Map<string, Throttle>();
    for (const [roomId, n] of latest) {
      const previous = await this.store.emailNotifs.previousNotificationTs(userId, roomId, Number(n.stream_pos));
      const gap = previous === undefined ? 0 : Number(n.ts) - previous;
      const current = throttles.get(roomId)?.throttle_ms ?? 0;
      const throttleMs = gap > THROTTLE_RESET_AFTER_MS || current === 0 ? this.delayMs : Math.min(current * THROTTLE_MULTIPLIER, THROTTLE_MAX_MS);
      next.set(roomId, { last_sent_ts: now, throttle_ms: throttleMs });
    }
    return next;
  }
}

/** The pusher in a dedupe key: the outbox keeps keys in the clear, and this one would hold an address. */
function pusherHash(pusher: PusherRow): string {
  return createHash('sha256').update(JSON.stringify([pusher.user_id, pusher.app_id, pusher.pushkey])).digest('base64url').slice(0, 22);
}
