import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../../clock.js';
import type { Store } from '../../storage/index.js';
import type { PusherRow } from '../../storage/pushers.js';
import { actionsOutcome } from '../push-rules/evaluator.js';
import { currentStateEvents, eventFromRow } from '../rooms/event-creator.js';
import { stateKeyOf, type StoredEvent } from '../rooms/pdu.js';
import { badgeMessage, pushMessage, type NotificationRoom } from './notification.js';
import type { PushRuleCache } from './rule-cache.js';

export const PUSH_CHANNEL = 'push';
const BATCH = 100;
const POLL_MS = 2_000;
const COALESCE_MS = 25;
/**
 * Progress is recorded with what it queued; a run of positions with nothing to push is recorded only
 * every so often (looking at them again after a crash finds nothing again), so that quiet sends do
 * not each cost a write.
 */
const RECORD_EVERY_POSITIONS = 1_000;
const RECORD_EVERY_MS = 5_000;

/**
 * Sends the notifications that push evaluation recorded (with each event, in its write: see
 * PushEvaluator) to their users' http pushers, once and in stream order: it records how far it got in
 * the same transaction as the outbox messages it queues (one per pusher), so a notification is
 * neither missed nor pushed twice, whatever crashes or restarts. It runs when this process has
 * written events (EventCreator's post-persist hook) and every few seconds for other processes'
 * events; each run first refreshes the push rule cache the evaluation uses. Room names are read as
 * they are when the batch runs.
 */
export class PushProcessor {
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = true;
  private timer: NodeJS.Timeout | undefined;
  private logger: Logger | undefined;
  private unrecorded: { persisted: number; reached: number } | undefined;
  private recordedAt = 0;
  private soon: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly rules: PushRuleCache,
    /** The outbox's clock (when a queued push is due). */
    private readonly outboxClock: Clock,
    private readonly clock: Clock,
    /** Called once pushes are committed to the outbox. */
    private readonly onQueued: () => void,
  ) {}

  start(logger: Logger): () => Promise<void> {
    this.logger = logger;
    this.stopped = false;
    this.poke();
    return () => this.stop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.soon) clearTimeout(this.soon);
    this.soon = undefined;
    await this.running;
  }

  /**
   * Looks for new notifications shortly: a run starts COALESCE_MS after the first poke, so that those
   * of a busy moment are queued and recorded as one batch, not one transaction each.
   */
  poke(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.soon) return;
    if (this.timer) clearTimeout(this.timer);
    this.soon = setTimeout(() => {
      this.soon = undefined;
      this.run();
    }, COALESCE_MS);
  }

  private run(): void {
    if (this.stopped || this.running) return;
    this.running = this.drain().finally(() => {
      this.running = undefined;
      if (this.again) return this.poke();
      if (this.stopped) return;
      this.timer = setTimeout(() => this.poke(), POLL_MS);
      this.timer.unref();
    });
  }

  private async drain(): Promise<void> {
    do {
      this.again = false;
      try {
        while (!this.stopped && (await this.runBatch()));
      } catch (err) {
        this.logger?.warn({ err: err instanceof Error ? err.message : String(err) }, 'push: queueing new notifications failed; will retry');
        return;
      }
    } while (this.again && !this.stopped);
  }

  /**
   * Queues a badge-only push (badgeMessage) to each of the user's http pushers, after a read receipt
   * of theirs moved at `position`. Queued once the receipt is committed, in a transaction of its own:
   * a crash between the two leaves the badge as it was until the next push.
   */
  async badgeUpdate(userId: string, position: number): Promise<void> {
    if (this.stopped) return;
    try {
      const pushers = await this.store.pushers.httpPushersOf([userId]);
      if (pushers.length === 0) return;
      let queued = 0;
      await this.store.transaction(async (tx) => {
        const unread = (await tx.push.unreadRooms([userId])).get(userId) ?? 0;
        for (const pusher of pushers) {
          const message = badgeMessage(userId, pusher, unread);
          const dedupeKey = `badge:${position}:${userId}:${pusher.app_id}:${pusher.pushkey}`;
          if (await tx.outbox.insert({ id: randomUUID(), channel: PUSH_CHANNEL, dedupeKey, payload: JSON.stringify(message), now: this.outboxClock.now() })) queued++;
        }
      });
      if (queued > 0) this.onQueued();
    } catch (err) {
      this.logger?.warn({ err: err instanceof Error ? err.message : String(err) }, 'push: queueing a badge update failed');
    }
  }

  /** Queues the next batch of notifications; true when more are waiting. */
  async runBatch(): Promise<boolean> {
    const persisted = await this.store.push.progress();
    // Positions this process looked at past the recorded progress, finding nothing to push: unless
    // another process has recorded progress since, they need no second look.
    const from = this.unrecorded?.persisted === persisted ? this.unrecorded.reached : persisted;
    const head = await this.store.streams.head();
    if (head <= from) return false;
    await this.rules.refresh(head);
    let rows = await this.store.push.pushable(from, head, BATCH);
    let upto = head;
    if (rows.length === BATCH) {
      // The batch ends with a whole event: every notification at its position.
      upto = rows[rows.length - 1]!.stream_pos;
      rows = [...rows.filter((r) => r.stream_pos < upto), ...(await this.store.push.pushable(upto - 1, upto))];
    }
    const now = this.clock.now();
    if (rows.length === 0 && upto - persisted < RECORD_EVERY_POSITIONS && now - this.recordedAt < RECORD_EVERY_MS) {
      this.unrecorded = { persisted, reached: upto };
      return upto < head;
    }
    const pushers = groupPushers(rows.length > 0 ? await this.store.pushers.httpPushersOf([...new Set(rows.map((r) => r.user_id))]) : []);
    const events = new Map((await this.store.events.getMany([...new Set(rows.map((r) => r.event_id))])).map((r) => [r.event_id, eventFromRow(r)]));
    const rooms = new Map<string, NotificationRoom>();

    let queued = 0;
    const done = await this.store.transaction(async (tx) => {
      // Another process recorded this batch meanwhile: leave it to that one.
      if ((await tx.push.lockProgress()) !== persisted) return false;
      const withPushers = rows.filter((r) => pushers.has(r.user_id) && events.has(r.event_id));
      const unread = withPushers.length > 0 ? await tx.push.unreadRooms([...new Set(withPushers.map((r) => r.user_id))]) : new Map<string, number>();
      for (const row of withPushers) {
        const event = events.get(row.event_id)!;
        const key = `${event.room_id}\u0000${event.sender}`;
        let room = rooms.get(key);
        if (!room) rooms.set(key, (room = await notificationRoom(tx, event)));
        const outcome = actionsOutcome(JSON.parse(row.actions) as unknown[]);
        for (const pusher of pushers.get(row.user_id)!) {
          // As Synapse: a pusher is for what happens once it is set, even if its pushes are queued late.
          if (Number(pusher.pushkey_ts) > event.origin_server_ts) continue;
          const message = pushMessage(event, row.user_id, outcome, pusher, room, unread.get(row.user_id) ?? 0);
          // The payload is stored as plain JSON (the outbox seal opens it as it is): it holds an
          // event the events table holds in the clear, and no secret.
          const dedupeKey = `push:${event.event_id}:${row.user_id}:${pusher.app_id}:${pusher.pushkey}`;
          if (await tx.outbox.insert({ id: randomUUID(), channel: PUSH_CHANNEL, dedupeKey, payload: JSON.stringify(message), now: this.outboxClock.now() })) queued++;
        }
      }
      await tx.push.setProgress(upto);
      return true;
    });
    this.unrecorded = undefined;
    if (done) this.recordedAt = now;
    if (queued > 0) this.onQueued();
    return done && upto < head;
  }
}

/** The room's name and alias, and the sender's display name, as they are now. */
async function notificationRoom(store: Store, event: StoredEvent): Promise<NotificationRoom> {
  const nameKey = stateKeyOf('m.room.name', '');
  const aliasKey = stateKeyOf('m.room.canonical_alias', '');
  const senderKey = stateKeyOf('m.room.member', event.sender);
  const state = await currentStateEvents(store, event.room_id, [nameKey, aliasKey, senderKey]);
  const name = state.get(nameKey)?.content.name;
  const alias = state.get(aliasKey)?.content.alias;
  const senderName = state.get(senderKey)?.content.displayname;
  return {
    ...(typeof name === 'string' && name !== '' ? { name } : {}),
    ...(typeof alias === 'string' ? { alias } : {}),
    ...(typeof senderName === 'string' && senderName !== '' ? { senderDisplayName: senderName } : {}),
  };
}

function groupPushers(rows: readonly PusherRow[]): Map<string, PusherRow[]> {
  const groups = new Map<string, PusherRow[]>();
  for (const row of rows) {
    const group = groups.get(row.user_id);
    if (group) group.push(row);
    else groups.set(row.user_id, [row]);
  }
  return groups;
}
