import type { Clock } from '../../clock.js';
import { invalidParam } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import type { JsonObject } from '../../validate.js';
import type { Requester } from '../devices.js';
import type { ClientEventSerializer } from '../rooms/client-event.js';
import type { PushProcessor } from './processor.js';

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 1000;
/** How long a read waits for the events sent before it to be evaluated. */
const EVALUATION_WAIT_MS = 2_000;

/** GET /notifications: the events that notified the user, newest first. */
export class NotificationService {
  constructor(
    private readonly store: Store,
    private readonly serializer: ClientEventSerializer,
    private readonly clock: Clock,
    private readonly processor: PushProcessor,
  ) {}

  async list(requester: Requester, options: { from?: string; limit?: number; only?: string }): Promise<{ notifications: JsonObject[]; next_token?: string }> {
    let before: number | undefined;
    if (options.from !== undefined) {
      if (!/^[0-9]{1,15}$/.test(options.from)) throw invalidParam("'from' is not a token this server gave");
      before = Number(options.from);
    }
    if (options.limit !== undefined && options.limit < 0) throw invalidParam("'limit' must not be negative");
    const limit = Math.min(options.limit ?? DEFAULT_LIMIT, MAX_LIMIT);
    // Evaluation runs after a send's commit: wait for it, so that an event already sent is listed.
    await this.processor.evaluated(await this.store.streams.head(), EVALUATION_WAIT_MS);
    const rows = await this.store.push.notifications(requester.userId, { before, limit, highlightOnly: options.only === 'highlight' });
    const events = await this.store.events.getMany(rows.map((r) => r.event_id));
    const serialized = await this.serializer.serialize(events, requester, this.clock.now());
    const byId = new Map(serialized.map((e) => [e.event_id, e]));
    const readUpTo = await this.readPositions(requester.userId, [...new Set(rows.map((r) => r.room_id))]);
    const notifications = rows.flatMap((row) => {
      const event = byId.get(row.event_id);
      if (!event) return [];
      const read = Number(row.stream_pos) <= (readUpTo.get(row.room_id) ?? -1);
      return [{ actions: JSON.parse(row.actions) as unknown[], event: event as unknown as JsonObject, read, room_id: row.room_id, ts: Number(row.ts) }];
    });
    const last = rows[rows.length - 1];
    return { notifications, ...(rows.length === limit && last ? { next_token: String(last.stream_pos) } : {}) };
  }

  /** Per room, the position of the event the user's main-timeline read receipt is at. */
  private async readPositions(userId: string, roomIds: string[]): Promise<Map<string, number>> {
    const positions = new Map<string, number>();
    for (const roomId of roomIds) {
      for (const r of await this.store.receipts.ofUser(roomId, userId, ['m.read', 'm.read.private'])) {
        if (r.thread_id === '' || r.thread_id === 'main') positions.set(roomId, Math.max(positions.get(roomId) ?? -1, Number(r.event_pos)));
      }
    }
    return positions;
  }
}
