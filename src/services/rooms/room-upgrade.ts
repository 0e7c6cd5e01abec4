import { setTimeout as sleep } from 'node:timers/promises';
import type { Clock } from '../../clock.js';
import type { Config } from '../../config/index.js';
import { randomLetters } from '../../crypto/tokens.js';
import { forbidden, MatrixError } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import type { JsonObject } from '../../validate.js';
import type { RoomDirectoryService } from '../directory/room-directory.js';
import type { RateLimiter } from '../ratelimiter.js';
import { powerLevelOf, requiredPowerLevel } from './auth-rules.js';
import { canonicalJson } from './canonical-json.js';
import { currentStateEvents, eventFromRow, type EventCreator, type RoomWrite } from './event-creator.js';
import { isSupportedRoomVersion, stateKeyOf, type RoomVersionId, type StoredEvent } from './pdu.js';
import { unsupportedRoomVersion, type RoomService } from './rooms.js';
import type { UpgradeUserState } from './upgrade-user-state.js';

/** The state the replacement room starts with, as Synapse copies it (and m.space.child, for a space). */
const COPIED_STATE = [
  'm.room.join_rules',
  'm.room.name',
  'm.room.topic',
  'm.room.history_visibility',
  'm.room.guest_access',
  'm.room.avatar',
  'm.room.encryption',
  'm.room.server_acl',
  'm.room.power_levels',
];

/** How long an upgrade's answer is given again to the same user asking again (Synapse's five minutes). */
const REPEAT_WINDOW_MS = 5 * 60_000;
/** How often a request waits between looks at an upgrade another request (in any process) is running. */
const POLL_MS = 50;
/** How long it waits before claiming again, which takes over a claim that has lapsed meanwhile. */
const WAIT_MS = 2_000;

/** What the upgrade reads of the old room before it writes anything. */
interface OldRoom {
  roomId: string;
  create: StoredEvent;
  powerLevels: JsonObject;
  copied: StoredEvent[];
  bans: StoredEvent[];
  /** The old room's latest event: the spec's `predecessor.event_id`, "the last known event in the old room". */
  lastEventId: string;
  published: boolean;
}

/**
 * POST /rooms/{roomId}/upgrade (the spec's "Room Upgrades", in Synapse's order), in three room
 * writes: checks that the user may send m.room.tombstone in the old room; creates the replacement
 * room with the old one's state and bans; tombstones the old room, moves its local aliases, takes
 * them out of its m.room.canonical_alias, takes it out of the directory and raises the level needed
 * to talk or invite in it; then gives the new room the canonical alias, the old room's power levels
 * and the directory entry; last, copies the old room's local members' tags, m.direct and push rules.
 */
export class RoomUpgrader {
  constructor(
    private readonly store: Store,
    private readonly rooms: RoomService,
    private readonly creator: EventCreator,
    private readonly directory: RoomDirectoryService,
    private readonly limiter: RateLimiter,
    private readonly config: Config,
    private readonly clock: Clock,
    private readonly userState: UpgradeUserState,
  ) {}

  /**
   * The replacement room's ID. As Synapse's response cache, but in the database so that it holds
   * across processes: while an upgrade of the room runs and for REPEAT_WINDOW_MS after, the same user
   * asking again gets the same room, anyone else a 400.
   */
  async upgrade(userId: string, roomId: string, newVersion: string): Promise<string> {
    if (!isSupportedRoomVersion(newVersion)) throw unsupportedRoomVersion(newVersion);
    const old = await this.readOldRoom(userId, roomId);
    await this.limiter.take(`message:${userId}`, this.config.rc_message);
    for (;;) {
      const claimId = randomLetters(16);
      const now = this.clock.now();
      const held = await this.store.roomUpgrades.claim(roomId, claimId, userId, now, now - REPEAT_WINDOW_MS);
      if (!held) continue;
      if (held.ours) return this.runClaimed(claimId, userId, old, newVersion);
      if (held.claim.userId !== userId) throw new MatrixError(400, 'M_UNKNOWN', 'An upgrade for this room is currently in progress');
      const newRoomId = held.claim.newRoomId ?? (await this.waitFor(roomId, held.claim.claimId));
      if (newRoomId !== undefined) return newRoomId;
      // Failed, or still running after WAIT_MS: claimed again (which fails while the claim is live).
    }
  }

  private async runClaimed(claimId: string, userId: string, old: OldRoom, version: RoomVersionId): Promise<string> {
    let newRoomId: string;
    try {
      newRoomId = await this.run(userId, old, version);
    } catch (err) {
      // Should giving the claim up fail too, the claim lapses by itself: the upgrade's own error is the answer.
      await this.store.roomUpgrades.abandon(old.roomId, claimId).catch(() => undefined);
      throw err;
    }
    await this.store.roomUpgrades.finish(old.roomId, claimId, newRoomId, this.clock.now());
    return newRoomId;
  }

  /** The claim's replacement room once it has one; undefined should the claim go (its upgrade failed) or WAIT_MS pass. */
  private async waitFor(roomId: string, claimId: string): Promise<string | undefined> {
    for (let waited = 0; waited < WAIT_MS; waited += POLL_MS) {
      await sleep(POLL_MS);
      const claim = await this.store.roomUpgrades.get(roomId);
      if (claim?.claimId !== claimId) return undefined;
      if (claim.newRoomId !== null) return claim.newRoomId;
    }
    return undefined;
  }

  private async run(userId: string, old: OldRoom, version: RoomVersionId): Promise<string> {
    const creationContent: JsonObject = { predecessor: { room_id: old.roomId, event_id: old.lastEventId } };
    if (typeof old.create.content.type === 'string') creationContent.type = old.create.content.type;
    if (old.create.content['m.federate'] === false) creationContent['m.federate'] = false;
    const { powerLevels, raised } = withUpgraderLevel(userId, old.powerLevels);
    const initialState = old.copied.map((e) => ({ type: e.type, state_key: e.state_key ?? '', content: e.type === 'm.room.power_levels' && e.state_key === '' ? powerLevels : e.content }));
    // No m.room.guest_access means forbidden; the preset below would otherwise let guests in.
    if (!old.copied.some((e) => e.type === 'm.room.guest_access')) initialState.push({ type: 'm.room.guest_access', state_key: '', content: { guest_access: 'forbidden' } });
    // Bans go in with the room's first events: no banned user may join it in between.
    const { room_id: newRoomId } = await this.rooms.createRoom(userId, { room_version: version, preset: 'private_chat', creation_content: creationContent, initial_state: initialState }, (room) =>
      this.copyBans(room, userId, old),
    );
    // As Synapse: the aliases move only once the old room is tombstoned, so that a tombstone refused
    // (the upgrader's power taken meanwhile) leaves them, and the directory entry, where they were.
    const canonicalAlias = await this.retire(userId, old, newRoomId);
    await this.settle(userId, old, newRoomId, raised, canonicalAlias);
    await this.userState.copyForMembers(old.roomId, newRoomId, (member) => this.rooms.isLocalUser(member));
    return newRoomId;
  }

  /** The old room as the upgrade needs it; M_FORBIDDEN unless the user is joined and may send m.room.tombstone. */
  private async readOldRoom(userId: string, roomId: string): Promise<OldRoom> {
    const room = await this.store.rooms.get(roomId);
    if (!room) throw forbidden('You are not in this room');
    const keys = [...COPIED_STATE, 'm.room.create'].map((type) => stateKeyOf(type, ''));
    const state = await currentStateEvents(this.store, roomId, [...keys, stateKeyOf('m.room.member', userId)]);
    if (state.get(stateKeyOf('m.room.member', userId))?.content.membership !== 'join') throw forbidden('You are not in this room');
    if (powerLevelOf(userId, state, room.room_version as RoomVersionId) < requiredPowerLevel('m.room.tombstone', true, state)) throw forbidden('You cannot upgrade this room');
    const create = state.get(stateKeyOf('m.room.create', ''))!;
    const copied = COPIED_STATE.flatMap((type) => state.get(stateKeyOf(type, '')) ?? []);
    if (create.content.type === 'm.space') {
      const children = (await this.store.rooms.currentStateIds(roomId)).filter((e) => e.type === 'm.space.child');
      // A child with empty content was removed from the space.
      copied.push(...(await this.eventsOf(children.map((e) => e.event_id))).filter((e) => Object.keys(e.content).length > 0));
    }
    const bans = await this.eventsOf((await this.store.rooms.members(roomId, ['ban'])).map((m) => m.event_id));
    const [lastEventId] = await this.store.events.forwardExtremities(roomId);
    return {
      roomId,
      create,
      powerLevels: state.get(stateKeyOf('m.room.power_levels', ''))?.content ?? {},
      copied,
      bans,
      lastEventId: lastEventId!,
      published: Number(room.is_public) === 1,
    };
  }

  private async eventsOf(eventIds: readonly string[]): Promise<StoredEvent[]> {
    return (await this.store.events.getMany(eventIds)).map(eventFromRow);
  }

  private async copyBans(room: RoomWrite, userId: string, old: OldRoom): Promise<void> {
    for (const ban of old.bans) {
      // A ban the room's rules refuse the upgrader (a banned user above them) is left behind, as with Synapse.
      await room.append(userId, { type: 'm.room.member', state_key: ban.state_key!, content: ban.content }).catch(ignoreForbidden);
    }
  }

  /**
   * In the old room: the tombstone, its aliases moved, its canonical alias without them, power levels
   * that silence it, out of the directory. Answers the canonical alias content it had.
   */
  private retire(userId: string, old: OldRoom, newRoomId: string): Promise<JsonObject | undefined> {
    return this.creator.write(old.roomId, async (room) => {
      await room.append(userId, { type: 'm.room.tombstone', state_key: '', content: { body: 'This room has been replaced', replacement_room: newRoomId } });
      await room.store.rooms.moveAliases(old.roomId, newRoomId);
      const alias = await room.state('m.room.canonical_alias');
      const kept = alias && this.splitCanonicalAlias(alias.content).kept;
      if (kept && canonicalJson(kept) !== canonicalJson(alias.content)) await room.append(userId, { type: 'm.room.canonical_alias', state_key: '', content: kept }).catch(ignoreForbidden);
      const levels = await room.state('m.room.power_levels');
      const restricted = levels && restrictedPowerLevels(levels.content);
      if (restricted) await room.append(userId, { type: 'm.room.power_levels', state_key: '', content: restricted }).catch(ignoreForbidden);
      if (old.published) await room.store.rooms.setPublic(old.roomId, false);
      return alias?.content;
    });
  }

  /** In the new room, last: the moved canonical alias, the old room's own power levels, the directory entry. */
  private async settle(userId: string, old: OldRoom, newRoomId: string, raised: boolean, canonicalAlias: JsonObject | undefined): Promise<void> {
    await this.creator.write(newRoomId, async (room) => {
      const moved = canonicalAlias && this.splitCanonicalAlias(canonicalAlias).moved;
      if (moved && Object.keys(moved).length > 0) await room.append(userId, { type: 'm.room.canonical_alias', state_key: '', content: moved });
      if (raised) await room.append(userId, { type: 'm.room.power_levels', state_key: '', content: old.powerLevels });
      if (old.published && (await this.directory.mayPublish(userId, newRoomId, room.store))) await room.store.rooms.setPublic(newRoomId, true);
    });
  }

  /** A canonical alias content split into this server's aliases (which move) and the rest (which stay). */
  private splitCanonicalAlias(content: JsonObject): { moved: JsonObject; kept: JsonObject } {
    const local = (alias: unknown) => typeof alias === 'string' && alias.endsWith(`:${this.config.server_name}`);
    const moved: JsonObject = {};
    const kept: JsonObject = { ...content };
    if (local(content.alias)) {
      moved.alias = content.alias;
      delete kept.alias;
    }
    if (Array.isArray(content.alt_aliases)) {
      const alt = content.alt_aliases.filter(local);
      const rest = content.alt_aliases.filter((a) => !local(a));
      if (alt.length > 0) moved.alt_aliases = alt;
      if (rest.length > 0) kept.alt_aliases = rest;
      else delete kept.alt_aliases;
    }
    return { moved, kept };
  }
}

function ignoreForbidden(err: unknown): void {
  if (!(err instanceof MatrixError && err.errcode === 'M_FORBIDDEN')) throw err;
}

const int = (value: unknown, fallback: number): number => (typeof value === 'number' && Number.isInteger(value) ? value : fallback);

/**
 * The old room's power levels for the new room, with the upgrader raised (when needed) to the highest
 * level any state event or ban asks, so that every copied event can be sent; the real levels follow.
 */
export function withUpgraderLevel(userId: string, content: JsonObject): { powerLevels: JsonObject; raised: boolean } {
  const events = content.events !== null && typeof content.events === 'object' && !Array.isArray(content.events) ? Object.values(content.events) : [];
  const needed = Math.max(int(content.state_default, 50), int(content.ban, 50), ...events.map((v) => int(v, 0)));
  const users = content.users !== null && typeof content.users === 'object' && !Array.isArray(content.users) ? (content.users as JsonObject) : {};
  if (int(users[userId], int(content.users_default, 0)) >= needed) return { powerLevels: content, raised: false };
  return { powerLevels: { ...content, users: { ...users, [userId]: needed } }, raised: true };
}

/**
 * The old room's levels with `invite` and `events_default` raised to max(50, users_default + 1), so
 * that ordinary members can no longer talk or invite there; undefined when both are already that high.
 */
export function restrictedPowerLevels(content: JsonObject): JsonObject | undefined {
  const level = Math.max(int(content.users_default, 0) + 1, 50);
  const next: JsonObject = { ...content };
  let changed = false;
  for (const key of ['invite', 'events_default']) {
    if (int(content[key], 0) < level) {
      next[key] = level;
      changed = true;
    }
  }
  return changed ? next : undefined;
}
