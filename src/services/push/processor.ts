import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../../clock.js';
import type { Store } from '../../storage/index.js';
import type { PusherRow } from '../../storage/pushers.js';
import { PushEventFields } from '../push-rules/event-fields.js';
import type { PushOutcome, RoomFacts } from '../push-rules/evaluator.js';
import { notificationPowerLevel, powerLevelOf } from '../rooms/auth-rules.js';
import { currentStateEvents, eventFromRow } from '../rooms/event-creator.js';
import { stateKeyOf, type RoomVersionId, type StoredEvent } from '../rooms/pdu.js';
import { pushMessage, type NotificationRoom } from './notification.js';
import type { PushRuleCache } from './rule-cache.js';

export const PUSH_CHANNEL = 'push';
const BATCH = 100;
const POLL_MS = 2_000;
const COALESCE_MS = 25;
const MAX_ROOMS = 10_000;
/**
 * Progress is recorded with what it found; a run of events that notify no one is recorded only
 * every so often (re-evaluating them after a crash finds nothing again), so that quiet sends do not
 * each cost a write.
 */
const RECORD_EVERY_POSITIONS = 1_000;
const RECORD_EVERY_MS = 5_000;

interface RoomContext {
  factsFor(sender: string): RoomFacts;
  /** Local joined members, with their display names. */
  members: Map<string, string | null>;
  notificationRoom(sender: string): NotificationRoom;
}

interface Recipient {
  userId: string;
  outcome: Readonly<PushOutcome>;
}

/**
 * Evaluates every new room event against its local members' push rules, once, in stream order: it
 * records how far it got in the same transaction as what it found (notification counts, the
 * notifications list, and one outbox message per http pusher to notify), so an event is neither
 * missed nor pushed twice, whatever crashes or restarts. It runs when this process has written
 * events (EventCreator's post-persist hook) and every few seconds for other processes' events.
 * Membership, names and power levels are read as they are when the batch runs, which for a
 * message just sent is the state it was sent in.
 */
export class PushProcessor {
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = true;
  private timer: NodeJS.Timeout | undefined;
  private logger: Logger | undefined;
  private readonly rooms = new Map<string, RoomContext | null>();
  private unrecorded: { persisted: number; reached: number } | undefined;
  private recordedAt = 0;
  private soon: NodeJS.Timeout | undefined;
  /** Called once a batch that notified someone is committed (email pushers look then). */
  readonly onRecorded: (() => void)[] = [];

  constructor(
    private readonly store: Store,
    private readonly rules: PushRuleCache,
    private readonly serverName: string,
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
   * Looks for new events shortly: a run starts COALESCE_MS after the first poke, so that the events
   * of a busy moment are evaluated and recorded as one batch, not one transaction each.
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
        this.logger?.warn({ err: err instanceof Error ? err.message : String(err) }, 'push: evaluating new events failed; will retry');
        return;
      }
    } while (this.again && !this.stopped);
  }

  /** Evaluates the next batch of events; true when more are waiting. */
  async runBatch(): Promise<boolean> {
    const persisted = await this.store.push.progress();
    // Events this process evaluated past the recorded progress, finding nothing to record: unless
    // another process has recorded progress since, they need no second look.
    const from = this.unrecorded?.persisted === persisted ? this.unrecorded.reached : persisted;
    const head = await this.store.streams.head();
    if (head <= from) return false;
    await this.rules.refresh(head);
    const rows = await this.store.push.eventsBetween(from, head, BATCH);
    const upto = rows.length < BATCH ? head : rows[rows.length - 1]!.stream_pos;

    const found: { event: StoredEvent; pos: number; recipients: Recipient[]; room: RoomContext }[] = [];
    for (const row of rows) {
      const event = eventFromRow(row);
      const room = await this.roomContext(row.room_id);
      // A state event may change who is in the room, their names or power: read the room again next time.
      if (event.state_key !== undefined) this.rooms.delete(row.room_id);
      if (!room) continue;
      const recipients = await this.evaluate(event, room);
      if (recipients.length > 0) found.push({ event, pos: row.stream_pos, recipients, room });
    }
    const now = this.clock.now();
    if (found.length === 0 && upto - persisted < RECORD_EVERY_POSITIONS && now - this.recordedAt < RECORD_EVERY_MS) {
      this.unrecorded = { persisted, reached: upto };
      return upto < head;
    }
    const notifyUsers = [...new Set(found.flatMap((f) => f.recipients.filter((r) => r.outcome.notify).map((r) => r.userId)))];
    const pushers = groupPushers(notifyUsers.length > 0 ? await this.store.pushers.httpPushersOf(notifyUsers) : []);

    let queued = 0;
    const done = await this.store.transaction(async (tx) => {
      // Another process recorded this batch meanwhile: leave it to that one.
      if ((await tx.push.lockProgress()) !== persisted) return false;
      for (const { event, pos, recipients, room } of found) {
        const notified = recipients.filter((r) => r.outcome.notify);
        if (notified.length === 0) continue;
        await tx.push.addCounts(event.room_id, pos, notified.map((r) => ({ userId: r.userId, highlight: r.outcome.highlight })));
        await tx.push.addNotifications(
          { roomId: event.room_id, eventId: event.event_id, streamPos: pos, ts: now },
          notified.map((r) => ({ userId: r.userId, actions: JSON.stringify(r.outcome.actions), highlight: r.outcome.highlight })),
        );
        const withPushers = notified.filter((r) => pushers.has(r.userId));
        if (withPushers.length === 0) continue;
        const unread = await tx.push.unreadRooms(withPushers.map((r) => r.userId));
        const notificationRoom = room.notificationRoom(event.sender);
        for (const r of withPushers) {
          for (const pusher of pushers.get(r.userId)!) {
            const message = pushMessage(event, r.userId, r.outcome, pusher, notificationRoom, unread.get(r.userId) ?? 0);
            const id = randomUUID();
            // The payload is stored as plain JSON (the outbox seal opens it as it is): it holds an
            // event the events table holds in the clear, and no secret.
            const inserted = await tx.outbox.insert({ id, channel: PUSH_CHANNEL, dedupeKey: `push:${event.event_id}:${r.userId}:${pusher.app_id}:${pusher.pushkey}`, payload: JSON.stringify(message), now: this.outboxClock.now() });
            if (inserted) queued++;
          }
        }
      }
      await tx.push.setProgress(upto);
      return true;
    });
    this.unrecorded = undefined;
    if (done) this.recordedAt = now;
    if (queued > 0) this.onQueued();
    if (done && found.length > 0) for (const hook of this.onRecorded) hook();
    return done && upto < head;
  }

  private async evaluate(event: StoredEvent, room: RoomContext): Promise<Recipient[]> {
    const candidates = [...room.members.keys()].filter((userId) => userId !== event.sender);
    // An invitee is not yet a member, but the invite is for them (.m.rule.invite_for_me).
    const invitee = event.type === 'm.room.member' && event.content.membership === 'invite' ? event.state_key : undefined;
    if (invitee !== undefined && invitee !== event.sender && this.isLocal(invitee) && !room.members.has(invitee)) candidates.push(invitee);
    if (candidates.length === 0) return [];
    const rulesets = await this.rules.rulesets(candidates);
    const ctx = { fields: new PushEventFields(event as unknown as Record<string, unknown>), room: room.factsFor(event.sender) };
    const recipients: Recipient[] = [];
    for (const userId of candidates) {
      const outcome = rulesets.get(userId)!.evaluate(ctx, { userId, displayName: room.members.get(userId) ?? null });
      if (outcome?.notify) recipients.push({ userId, outcome });
    }
    return recipients;
  }

  private isLocal(userId: string): boolean {
    return userId.endsWith(`:${this.serverName}`);
  }

  /** A room's context, kept until a state event of the room goes by (every process's events do, in order). */
  private async roomContext(roomId: string): Promise<RoomContext | null> {
    let context = this.rooms.get(roomId);
    if (context === undefined) {
      context = await this.readRoomContext(roomId);
      if (this.rooms.size >= MAX_ROOMS) this.rooms.clear();
      this.rooms.set(roomId, context);
    }
    return context;
  }

  private async readRoomContext(roomId: string): Promise<RoomContext | null> {
    const row = await this.store.rooms.get(roomId);
    if (!row) return null;
    const version = row.room_version as RoomVersionId;
    const state = await currentStateEvents(this.store, roomId, [
      stateKeyOf('m.room.create', ''),
      stateKeyOf('m.room.power_levels', ''),
      stateKeyOf('m.room.name', ''),
      stateKeyOf('m.room.canonical_alias', ''),
    ]);
    const joined = await this.store.rooms.members(roomId, ['join']);
    const members = new Map<string, string | null>();
    const names = new Map<string, string | null>();
    for (const m of joined) {
      names.set(m.user_id, m.displayname);
      if (this.isLocal(m.user_id)) members.set(m.user_id, m.displayname);
    }
    const name = state.get(stateKeyOf('m.room.name', ''))?.content.name;
    const alias = state.get(stateKeyOf('m.room.canonical_alias', ''))?.content.alias;
    const levels = new Map<string, number>();
    const notificationLevel = (key: string) => {
      let level = levels.get(key);
      if (level === undefined) levels.set(key, (level = notificationPowerLevel(key, state)));
      return level;
    };
    return {
      factsFor: (sender) => ({ memberCount: joined.length, senderPowerLevel: powerLevelOf(sender, state, version), notificationLevel }),
      members,
      notificationRoom: (sender) => {
        const senderName = names.get(sender);
        return {
          ...(typeof name === 'string' && name !== '' ? { name } : {}),
          ...(typeof alias === 'string' ? { alias } : {}),
          ...(senderName ? { senderDisplayName: senderName } : {}),
        };
      },
    };
  }
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
