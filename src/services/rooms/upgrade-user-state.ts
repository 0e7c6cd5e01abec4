import type { Logger } from 'pino';
import type { Store } from '../../storage/index.js';
import { isObject, type JsonObject } from '../../validate.js';
import type { PushRuleService } from '../push-rules/push-rules.js';
import type { StreamWriter } from '../sync/stream-writer.js';

const TAG_TYPE = 'm.tag';
const DIRECT_TYPE = 'm.direct';

/**
 * What of a user's own state follows them from an upgraded room to its replacement, as Synapse's
 * copy_user_state_on_room_upgrade copies it: the room's tags, the new room listed in `m.direct`
 * wherever the old one is, and their push rules about the old room (see
 * PushRuleService.copyRoomRules). Only what the new room does not have yet is added, so copying
 * again (a later join) changes nothing the user set there. Each write goes through the stream, so
 * it reaches the user's syncs as their own changes do.
 */
export class UpgradeUserState {
  logger: Logger | undefined;

  constructor(
    private readonly store: Store,
    private readonly writer: StreamWriter,
    private readonly pushRules: PushRuleService,
  ) {}

  /** At an upgrade, as Synapse does: for every local user joined to the old room. A failure for one user is logged and skipped. */
  async copyForMembers(oldRoomId: string, newRoomId: string, isLocal: (userId: string) => boolean): Promise<void> {
    const members = (await this.store.rooms.members(oldRoomId, ['join'])).map((m) => m.user_id).filter(isLocal);
    for (const userId of members) await this.logged(userId, oldRoomId, newRoomId, () => this.copy(userId, oldRoomId, newRoomId));
  }

  /**
   * A local user newly joined `roomId`, whose create event names `predecessorId`: copied when they
   * are joined there too (someone who joined the old room after the upgrade, or changed their tags
   * since). A failure is logged; the join stands.
   */
  async copyOnJoin(userId: string, roomId: string, predecessorId: string): Promise<void> {
    await this.logged(userId, predecessorId, roomId, async () => {
      const member = await this.store.rooms.member(predecessorId, userId);
      if (member?.membership === 'join') await this.copy(userId, predecessorId, roomId);
    });
  }

  private async logged(userId: string, oldRoomId: string, newRoomId: string, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (err) {
      this.logger?.warn({ err: (err as Error).message, user_id: userId, old_room_id: oldRoomId, room_id: newRoomId }, 'copying tags and push rules to an upgraded room failed');
    }
  }

  async copy(userId: string, oldRoomId: string, newRoomId: string): Promise<void> {
    await this.copyAccountData(userId, oldRoomId, newRoomId);
    await this.pushRules.copyRoomRules(userId, oldRoomId, newRoomId);
  }

  /** The tags and `m.direct`, in one write; none (no stream position taken) when there is nothing to add. */
  private async copyAccountData(userId: string, oldRoomId: string, newRoomId: string): Promise<void> {
    const read = async (store: Store) => {
      const [oldTags, newTags, direct] = await Promise.all([
        store.accountData.get(userId, oldRoomId, TAG_TYPE),
        store.accountData.get(userId, newRoomId, TAG_TYPE),
        store.accountData.get(userId, '', DIRECT_TYPE),
      ]);
      return { tags: mergedTags(tagsOf(oldTags), tagsOf(newTags)), direct: directWith(parse(direct), oldRoomId, newRoomId) };
    };
    const first = await read(this.store);
    if (!first.tags && !first.direct) return;
    await this.writer.write(async (tx) => {
      // The position first (it serialises stream writers), then read again: a change made meanwhile is kept.
      const position = await tx.position(userId);
      const { tags, direct } = await read(tx.store);
      if (tags) await tx.store.accountData.put(userId, newRoomId, TAG_TYPE, JSON.stringify({ tags }), position);
      if (direct) await tx.store.accountData.put(userId, '', DIRECT_TYPE, JSON.stringify(direct), position);
    });
  }
}

function parse(json: string | undefined): unknown {
  return json === undefined ? undefined : (JSON.parse(json) as unknown);
}

function tagsOf(json: string | undefined): JsonObject {
  const content = parse(json);
  return isObject(content) && isObject(content.tags) ? content.tags : {};
}

/** The new room's tags with the old room's it lacks; undefined when it lacks none. */
function mergedTags(oldTags: JsonObject, newTags: JsonObject): JsonObject | undefined {
  const missing = Object.entries(oldTags).filter(([tag, content]) => isObject(content) && !(tag in newTags));
  return missing.length === 0 ? undefined : { ...newTags, ...Object.fromEntries(missing) };
}

/** `m.direct` with the new room added to every user's list that has the old one; undefined when none changes. */
function directWith(content: unknown, oldRoomId: string, newRoomId: string): JsonObject | undefined {
  if (!isObject(content)) return undefined;
  let changed = false;
  const next: JsonObject = {};
  for (const [user, rooms] of Object.entries(content)) {
    if (Array.isArray(rooms) && rooms.includes(oldRoomId) && !rooms.includes(newRoomId)) {
      next[user] = [...rooms, newRoomId];
      changed = true;
    } else {
      next[user] = rooms;
    }
  }
  return changed ? next : undefined;
}
