import { forbidden, invalidParam } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import { isObject, type JsonObject } from '../../validate.js';
import { isRoomId } from '../user-ids.js';
import type { StreamWriter } from '../sync/stream-writer.js';

const TAG_TYPE = 'm.tag';
/** Synapse's limit on a tag's name, in bytes. */
const MAX_TAG_BYTES = 255;

/**
 * Room tags: the `m.tag` room account data (`{"tags": {name: {order?}}}`), changed one tag at a time.
 * Sync reports them as room account data, so they need nothing of their own there.
 */
export class RoomTagService {
  constructor(
    private readonly store: Store,
    private readonly writer: StreamWriter,
  ) {}

  async tags(requesterId: string, userId: string, roomId: string): Promise<Record<string, JsonObject>> {
    check(requesterId, userId, roomId, 'read the tags');
    return tagsOf(await this.store.accountData.get(userId, roomId, TAG_TYPE));
  }

  async put(requesterId: string, userId: string, roomId: string, tag: string, content: JsonObject): Promise<void> {
    check(requesterId, userId, roomId, 'add tags');
    if (tag === '' || Buffer.byteLength(tag) > MAX_TAG_BYTES) throw invalidParam(`A tag must be 1 to ${MAX_TAG_BYTES} bytes long`);
    await this.change(userId, roomId, (tags) => ({ ...tags, [tag]: content }));
  }

  async delete(requesterId: string, userId: string, roomId: string, tag: string): Promise<void> {
    check(requesterId, userId, roomId, 'remove tags');
    await this.change(userId, roomId, (tags) => {
      if (!(tag in tags)) return undefined;
      const { [tag]: _removed, ...rest } = tags;
      return rest;
    });
  }

  /** Read, change and write the tags; `change` answers undefined when there is nothing to write. */
  private async change(userId: string, roomId: string, change: (tags: Record<string, JsonObject>) => Record<string, JsonObject> | undefined): Promise<void> {
    await this.writer.write(async (tx) => {
      // The position first: it serialises stream writers, so two tag changes cannot both read the old tags.
      const position = await tx.position(userId);
      const tags = change(tagsOf(await tx.store.accountData.get(userId, roomId, TAG_TYPE)));
      if (tags === undefined) return;
      await tx.store.accountData.put(userId, roomId, TAG_TYPE, JSON.stringify({ tags }), position);
    });
  }
}

function check(requesterId: string, userId: string, roomId: string, verb: string): void {
  if (requesterId !== userId) throw forbidden(`Cannot ${verb} for other users.`);
  if (!isRoomId(roomId)) throw invalidParam(`Invalid room ID: ${roomId}`);
}

function tagsOf(json: string | undefined): Record<string, JsonObject> {
  const content = json === undefined ? undefined : (JSON.parse(json) as unknown);
  const tags = isObject(content) ? content.tags : undefined;
  if (!isObject(tags)) return {};
  return Object.fromEntries(Object.entries(tags).filter((entry): entry is [string, JsonObject] => isObject(entry[1])));
}
