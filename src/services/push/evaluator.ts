import type { Clock } from '../../clock.js';
import type { Store } from '../../storage/index.js';
import { MAIN_THREAD } from '../../storage/push.js';
import { isObject } from '../../validate.js';
import { PushEventFields } from '../push-rules/event-fields.js';
import type { PushOutcome, RoomFacts } from '../push-rules/evaluator.js';
import { notificationPowerLevel, powerLevelOf } from '../rooms/auth-rules.js';
import type { EventHook, RoomWrite } from '../rooms/event-creator.js';
import { stateKeyOf, type StoredEvent } from '../rooms/pdu.js';
import type { PushRuleCache } from './rule-cache.js';

const MAX_ROOMS = 10_000;

/** What push rules need of a room, as of one state group. */
interface RoomContext {
  group: number;
  factsFor(sender: string): RoomFacts;
  /** Local joined members, with their display names. */
  members: Map<string, string | null>;
}

interface Recipient {
  userId: string;
  outcome: Readonly<PushOutcome>;
}

/**
 * Evaluates each new room event against its local members' push rules inside the event's own write
 * (as Synapse computes push actions before persisting and stores them in the event's transaction):
 * before the event takes its stream position, so that the rules' work adds nothing to the time the
 * position is held; then, once it has one, the notifications and the counts are written at that
 * position, committed with the event. A sync that sees the event sees its counts.
 *
 * A room's members and power levels are kept per state group: any state event gives the room a new
 * group (in any process), so a kept context is current exactly while the room's group is the same.
 */
export class PushEvaluator {
  private readonly rooms = new Map<string, RoomContext>();

  constructor(
    private readonly rules: PushRuleCache,
    private readonly serverName: string,
    private readonly clock: Clock,
  ) {}

  /** Called when an event being written notifies someone (email pushers then plan a look; no I/O). */
  readonly onNotifying: (() => void)[] = [];

  /** For EventCreator: the work to run with the event's position, if it notifies anyone. */
  readonly hook: EventHook = async (write, event) => {
    const recipients = await this.evaluate(write, event);
    if (recipients.length === 0) return undefined;
    for (const notify of this.onNotifying) notify();
    const threadId = await threadOf(write.store, event);
    const ts = this.clock.now();
    const users = recipients.map((r) => ({ userId: r.userId, actions: JSON.stringify(r.outcome.actions), highlight: r.outcome.highlight }));
    const notifying = { roomId: event.room_id, eventId: event.event_id, threadId, ts };
    return {
      atPosition: (pos) => write.store.push.record({ ...notifying, streamPos: pos }, users),
      atTakenPosition: () => write.store.push.recordAtTakenPositionStatement(notifying, users),
    };
  };

  private async evaluate(write: RoomWrite, event: StoredEvent): Promise<Recipient[]> {
    const room = await this.roomContext(write);
    const candidates = [...room.members.keys()].filter((userId) => userId !== event.sender);
    // An invitee is not yet a member, but the invite is for them (.m.rule.invite_for_me).
    const invitee = event.type === 'm.room.member' && event.content.membership === 'invite' ? event.state_key : undefined;
    if (invitee !== undefined && invitee !== event.sender && invitee.endsWith(`:${this.serverName}`) && !room.members.has(invitee)) candidates.push(invitee);
    if (candidates.length === 0) return [];
    const rulesets = await this.rules.rulesets(candidates, write.store);
    const ctx = { fields: new PushEventFields(event as unknown as Record<string, unknown>), room: room.factsFor(event.sender) };
    const recipients: Recipient[] = [];
    for (const userId of candidates) {
      const outcome = rulesets.get(userId)!.evaluate(ctx, { userId, displayName: room.members.get(userId) ?? null });
      if (outcome?.notify) recipients.push({ userId, outcome });
    }
    return recipients;
  }

  private async roomContext(write: RoomWrite): Promise<RoomContext> {
    const group = write.currentStateGroup;
    let context = this.rooms.get(write.roomId);
    if (context?.group !== group) {
      context = await this.readRoomContext(write, group);
      if (this.rooms.size >= MAX_ROOMS) this.rooms.clear();
      this.rooms.set(write.roomId, context);
    }
    return context;
  }

  private async readRoomContext(write: RoomWrite, group: number): Promise<RoomContext> {
    const state = await write.stateOf([stateKeyOf('m.room.create', ''), stateKeyOf('m.room.power_levels', '')]);
    const joined = await write.store.rooms.members(write.roomId, ['join']);
    const members = new Map<string, string | null>();
    for (const m of joined) if (m.user_id.endsWith(`:${this.serverName}`)) members.set(m.user_id, m.displayname);
    const levels = new Map<string, number>();
    const notificationLevel = (key: string) => {
      let level = levels.get(key);
      if (level === undefined) levels.set(key, (level = notificationPowerLevel(key, state)));
      return level;
    };
    const version = write.version;
    return { group, members, factsFor: (sender) => ({ memberCount: joined.length, senderPowerLevel: powerLevelOf(sender, state, version), notificationLevel }) };
  }
}

function relationOf(content: unknown): { relType: string; eventId: string } | undefined {
  const relation = isObject(content) ? content['m.relates_to'] : undefined;
  if (!isObject(relation) || typeof relation.rel_type !== 'string' || typeof relation.event_id !== 'string') return undefined;
  return { relType: relation.rel_type, eventId: relation.event_id };
}

/**
 * The thread an event counts in: the root of its `m.thread` relation, or of the thread of the event
 * it relates to otherwise (an edit or a reaction in a thread); else the main timeline.
 */
async function threadOf(store: Store, event: StoredEvent): Promise<string> {
  const relation = relationOf(event.content);
  if (!relation) return MAIN_THREAD;
  if (relation.relType === 'm.thread') return relation.eventId;
  const parent = await store.events.get(relation.eventId);
  if (!parent || parent.room_id !== event.room_id) return MAIN_THREAD;
  const parentRelation = relationOf((JSON.parse(parent.pdu) as { content?: unknown }).content);
  return parentRelation?.relType === 'm.thread' ? parentRelation.eventId : MAIN_THREAD;
}
