import type { Clock } from '../../clock.js';
import { MatrixError, notFound } from '../../errors.js';
import type { EventRow } from '../../storage/events.js';
import type { Store } from '../../storage/index.js';
import type { Requester } from '../devices.js';
import type { ClientEvent, ClientEventSerializer } from './client-event.js';
import { MAX_PAGE_LIMIT, type Access, type RoomReadService } from './room-reads.js';
import { encodeRoomToken, pointAfter, pointBefore, type RoomPoint } from './room-token.js';

/** How many levels of relations `recurse=true` follows (the spec asks for at least 3). */
export const RECURSION_DEPTH = 3;
export const DEFAULT_RELATIONS_LIMIT = 5;
export const DEFAULT_THREADS_LIMIT = 5;
/** Pages read to fill one answer when history visibility leaves events out. */
const MAX_ROUNDS = 5;

export interface RelationsQuery {
  relType?: string;
  eventType?: string;
  from?: string;
  to?: string;
  limit?: number;
  dir: 'b' | 'f';
  recurse?: boolean;
}

export interface RelationsResponse {
  chunk: ClientEvent[];
  next_batch?: string;
  prev_batch?: string;
  recursion_depth?: number;
}

export interface ThreadsResponse {
  chunk: ClientEvent[];
  next_batch?: string;
}

/**
 * GET /relations (a parent's children, paged with /messages tokens) and GET /threads (a room's
 * thread roots, latest activity first), with the room access and history visibility of every other
 * room read (RoomReadService).
 */
export class RelationReadService {
  constructor(
    private readonly store: Store,
    private readonly reads: RoomReadService,
    private readonly serializer: ClientEventSerializer,
    private readonly clock: Clock,
  ) {}

  async relations(requester: Requester, roomId: string, eventId: string, query: RelationsQuery): Promise<RelationsResponse> {
    // The spec's only error here is 404, for a parent that is unknown or that the user may not read.
    let access: Access;
    try {
      access = await this.reads.access(roomId, requester);
    } catch (err: unknown) {
      if (err instanceof MatrixError && err.errcode === 'M_FORBIDDEN') throw notFound('Event not found');
      throw err;
    }
    const parent = await this.store.events.get(eventId);
    if (!parent || parent.room_id !== roomId || !this.reads.readable(access, parent)) throw notFound('Event not found');
    let from = query.from !== undefined ? await this.reads.point(query.from, roomId) : undefined;
    let to = query.to !== undefined ? await this.reads.point(query.to, roomId) : undefined;
    if (access.departed) {
      const cap = pointAfter(access.departed);
      if (query.dir === 'b') from = from ? earlier(from, cap) : cap;
      else to = to ? earlier(to, cap) : cap;
    }
    const limit = Math.max(1, Math.min(query.limit ?? DEFAULT_RELATIONS_LIMIT, MAX_PAGE_LIMIT));
    const depth = query.recurse ? RECURSION_DEPTH : 1;
    const rows: EventRow[] = [];
    let cursor = from;
    let exhausted = false;
    for (let round = 0; round < MAX_ROUNDS && rows.length < limit && !exhausted; round++) {
      const batch = Math.min(MAX_PAGE_LIMIT, Math.max(2 * (limit - rows.length), 20));
      const keys = await this.store.relations.children({ parentId: eventId, roomId, relType: query.relType, eventType: query.eventType, dir: query.dir, from: cursor, to, limit: batch, depth });
      const found = new Map((await this.store.events.getMany(keys.map((k) => k.event_id))).map((r) => [r.event_id, r]));
      let examined = 0;
      for (const key of keys) {
        examined++;
        const point = { depth: Number(key.depth), stream_pos: Number(key.stream_pos) };
        cursor = query.dir === 'b' ? pointBefore(point) : pointAfter(point);
        const row = found.get(key.event_id);
        if (row && this.reads.readable(access, row)) rows.push(row);
        if (rows.length === limit) break;
      }
      exhausted = keys.length < batch && examined === keys.length;
    }
    const response: RelationsResponse = { chunk: await this.serializer.serialize(rows, access.viewer, this.clock.now()) };
    if (!exhausted && cursor) response.next_batch = encodeRoomToken(cursor);
    if (query.from !== undefined) response.prev_batch = query.from;
    if (query.recurse !== undefined) response.recursion_depth = depth;
    return response;
  }

  async threads(requester: Requester, roomId: string, query: { include: 'all' | 'participated'; from?: string; limit?: number }): Promise<ThreadsResponse> {
    const access = await this.reads.access(roomId, requester);
    const limit = Math.min(query.limit ?? DEFAULT_THREADS_LIMIT, MAX_PAGE_LIMIT);
    let before = query.from !== undefined ? (await this.reads.point(query.from, roomId)).pos + 1 : undefined;
    const participant = query.include === 'participated' ? requester.userId : undefined;
    const roots: EventRow[] = [];
    let exhausted = false;
    let last: number | undefined;
    for (let round = 0; round < MAX_ROUNDS && roots.length < limit && !exhausted; round++) {
      const batch = Math.min(MAX_PAGE_LIMIT, Math.max(2 * (limit - roots.length), 20));
      const threads = await this.store.relations.threads(roomId, { before, participant, limit: batch });
      const found = new Map((await this.store.events.getMany(threads.map((t) => t.root_id))).map((r) => [r.event_id, r]));
      let examined = 0;
      for (const thread of threads) {
        examined++;
        before = thread.latest_pos;
        last = thread.latest_pos;
        const root = found.get(thread.root_id);
        if (root && root.room_id === roomId && this.reads.readable(access, root)) roots.push(root);
        if (roots.length === limit) break;
      }
      exhausted = threads.length < batch && examined === threads.length;
    }
    const response: ThreadsResponse = { chunk: await this.serializer.serialize(roots, access.viewer, this.clock.now()) };
    // A room token naming the position just before the last thread's latest event: the next page has the threads active before it.
    if (!exhausted && last !== undefined) response.next_batch = encodeRoomToken({ depth: 0, pos: last - 1 });
    return response;
  }
}

function earlier(a: RoomPoint, b: RoomPoint): RoomPoint {
  return a.depth !== b.depth ? (a.depth < b.depth ? a : b) : a.pos <= b.pos ? a : b;
}

