import { performance } from 'node:perf_hooks';
import type { Clock } from '../../clock.js';
import { forbidden, invalidParam, MatrixError, missingParam, notFound } from '../../errors.js';
import type { EventRow } from '../../storage/events.js';
import type { Store } from '../../storage/index.js';
import type { JsonObject } from '../../validate.js';
import type { Requester } from '../devices.js';
import type { PresenceService } from '../presence.js';
import type { ClientEvent, ClientEventSerializer } from '../rooms/client-event.js';
import type { RoomInitialSync, RoomReadService } from '../rooms/room-reads.js';
import { parseTopologicalToken } from '../rooms/room-token.js';
import { historyVisibilityOf, RoomVisibility } from '../rooms/visibility.js';
import type { EphemeralSync } from './ephemeral.js';
import type { Notifier } from './notifier.js';
import type { RoomMemberships } from './room-memberships.js';
import { encodeSyncToken, tokenPosition } from './sync-token.js';

/** The events one /events answer holds when the client names no limit, and the most it may ask. */
export const DEFAULT_STREAM_LIMIT = 10;
export const MAX_STREAM_LIMIT = 1000;
/** Batches of the stream read in one pass when history visibility leaves every event of a batch out. */
const MAX_ROUNDS = 5;
/** Joined rooms whose initialSync snapshot is read at once. */
const ROOM_CONCURRENCY = 4;

const MEMBER = 'm.room.member';
const pos = (row: { stream_pos: number }) => Number(row.stream_pos);

/** A parsed GET /events query: the token still unchecked. */
export interface EventStreamRequest {
  from?: string;
  timeoutMs: number;
  limit: number;
  /** Only this room's events: one the user is joined to, or a world_readable one to peek into. */
  roomId?: string;
}

export interface EventStreamResponse {
  chunk: JsonObject[];
  start: string;
  end: string;
}

/** Which rooms a read of the stream covers, and up to where in each the user may read. */
interface Scope {
  /** Rooms whose events are read, each with the last position the user may read there. */
  rooms: Map<string, number>;
  /** The user's own invite events in the window (rooms they are only invited to). */
  invites: { roomId: string; eventId: string; pos: number }[];
  /** A stranger peeking into one world_readable room. */
  peeking: boolean;
}

interface Batch {
  chunk: JsonObject[];
  /** Where the next read starts: every event at or before it was read. */
  end: number;
  /** `end` is the stream's head as the read saw it: nothing more to read yet. */
  caughtUp: boolean;
}

/**
 * The old, deprecated event-stream API that the spec still lists and Synapse still serves:
 * GET /events (a long-poll over the global stream, also for peeking into a world_readable room),
 * GET /initialSync, GET /rooms/{roomId}/initialSync and GET /events/{eventId}. It reuses sync's
 * pieces: the stream tokens, the notifier a waiting /sync sleeps on, sync's reading of the user's
 * memberships, its receipts and typing, and the room reads' visibility and event serializer (so
 * history visibility, redaction and erasure apply as on /sync and /messages). Events go out in the
 * old client format these endpoints always had (see legacyEvent).
 */
export class LegacyEventsService {
  constructor(
    private readonly store: Store,
    private readonly notifier: Notifier,
    private readonly serializer: ClientEventSerializer,
    private readonly roomReads: RoomReadService,
    private readonly memberships: RoomMemberships,
    private readonly ephemeral: EphemeralSync,
    private readonly presence: PresenceService,
    private readonly clock: Clock,
  ) {}

  /** GET /events: what happened after `from` (now when absent), waiting up to the timeout for something. */
  async stream(requester: Requester, request: EventStreamRequest): Promise<EventStreamResponse> {
    // As Synapse: a guest reads one room's events, never a stream of its own.
    if (requester.isGuest && request.roomId === undefined) throw missingParam('room_id');
    let position: number | undefined;
    if (request.from !== undefined) {
      // A room token (a room initialSync's messages.end, as Synapse's clients pass it) stands for its stream position.
      position = parseTopologicalToken(request.from)?.pos ?? (await tokenPosition(request.from, requester.userId, this.store.streams));
      if (position === undefined) throw invalidParam("'from' parameter is invalid");
    }
    const peekRoom = request.roomId !== undefined ? await this.peekable(request.roomId, requester.userId) : undefined;
    // A client reading the stream is online, as one that syncs (Synapse: not for guests). Before the
    // head is read: a stream that starts now starts after the change.
    if (!requester.isGuest) await this.presence.touch(requester.userId, 'online');
    const head = await this.store.streams.head();
    const from = position === undefined ? head : Math.min(position, head);
    const start = encodeSyncToken(from);
    const limit = Math.max(1, Math.min(request.limit, MAX_STREAM_LIMIT));
    if (request.timeoutMs <= 0) {
      const batch = await this.batch(requester, from, limit, peekRoom);
      return { chunk: batch.chunk, start, end: encodeSyncToken(batch.end) };
    }
    return this.notifier.track(() => this.longPoll(requester, from, limit, peekRoom, request.timeoutMs, start));
  }

  private async longPoll(requester: Requester, from: number, limit: number, peekRoom: { roomId: string; peeking: boolean } | undefined, timeout: number, start: string): Promise<EventStreamResponse> {
    const deadline = performance.now() + timeout;
    let after = from;
    for (;;) {
      // As /sync: subscribed before reading, so that a change committed in between still wakes us.
      const subscription = this.notifier.subscribeBeforeRooms(requester.userId);
      try {
        const batch = await this.batch(requester, after, limit, peekRoom);
        after = batch.end;
        if (batch.chunk.length > 0 || deadline - performance.now() <= 0 || this.notifier.isClosed) return { chunk: batch.chunk, start, end: encodeSyncToken(batch.end) };
        // Only hidden events so far, and more of the stream still unread: read on before waiting.
        if (!batch.caughtUp) continue;
        subscription.listen(peekRoom ? [peekRoom.roomId] : await this.memberships.joinedRoomIds(requester.userId));
        await subscription.wait(deadline - performance.now());
      } finally {
        subscription.dispose();
      }
    }
  }

  /**
   * The events after `after`: room events in stream order (at most `limit`; `end` is then the last
   * one's position), and the receipts, typing, account data and presence up to the same point.
   * Reads on while visibility leaves a whole batch out, a few batches at most.
   */
  private async batch(requester: Requester, after: number, limit: number, peekRoom: { roomId: string; peeking: boolean } | undefined): Promise<Batch> {
    const { userId } = requester;
    const head = await this.store.streams.head();
    let from = after;
    for (let round = 0; ; round++) {
      if (from >= head) return { chunk: [], end: Math.max(from, head), caughtUp: true };
      const scope = await this.scope(userId, from, head, peekRoom);
      const { rows, end } = await this.roomEvents(userId, scope, from, head, limit);
      const events = (await this.serializer.serialize(rows, { userId, deviceId: requester.deviceId }, this.clock.now(), new Set())).map(legacyEvent);
      const others = await this.nonRoomEvents(userId, scope, from, end, peekRoom);
      const chunk = [...events, ...others];
      if (chunk.length > 0 || end >= head || round + 1 >= MAX_ROUNDS) return { chunk, end, caughtUp: end >= head };
      from = end;
    }
  }

  /** The rooms a read covers: the peeked (or named) room, or every room the user was in during the window. */
  private async scope(userId: string, after: number, upto: number, peekRoom: { roomId: string; peeking: boolean } | undefined): Promise<Scope> {
    if (peekRoom) return { rooms: new Map([[peekRoom.roomId, upto]]), invites: [], peeking: peekRoom.peeking };
    const memberships = await this.memberships.read(userId, after, upto, { allJoined: true });
    const rooms = new Map<string, number>();
    for (const j of memberships.joined) rooms.set(j.roomId, upto);
    // A room left in the window: up to the leave (or ban), which the client must see.
    for (const l of memberships.left) rooms.set(l.roomId, l.pos);
    return { rooms, invites: memberships.invited, peeking: false };
  }

  /**
   * The room events of the window the user may see, oldest first: each room's up to the user's
   * last position there, with history visibility applied as /messages applies it, and the user's own
   * member events always (an invite, a kick). At most `limit`, read in one statement across rooms.
   */
  private async roomEvents(userId: string, scope: Scope, after: number, upto: number, limit: number): Promise<{ rows: EventRow[]; end: number }> {
    const batchSize = Math.min(MAX_STREAM_LIMIT, 2 * limit + 10);
    const raw = await this.store.events.streamSlice([...scope.rooms.keys()], after, upto, batchSize);
    // A full batch read up to its last event only: later ones are the next read's.
    let end = raw.length === batchSize ? pos(raw[raw.length - 1]!) : upto;
    const invites = scope.invites.filter((i) => i.pos > after && i.pos <= end);
    const inviteRows = invites.length > 0 ? await this.store.events.getMany(invites.map((i) => i.eventId)) : [];
    const candidates = [...raw, ...inviteRows].sort((a, b) => pos(a) - pos(b));
    const roomIds = [...new Set(raw.map((r) => r.room_id))];
    const histories = scope.peeking || roomIds.length === 0 ? new Map<string, never[]>() : await this.store.events.membershipHistories(roomIds, userId);
    const visibility = new Map(roomIds.map((id) => [id, new RoomVisibility(userId, histories.get(id) ?? [])]));
    const own = (row: EventRow) => row.type === MEMBER && row.state_key === userId;
    let rows = candidates.filter((row) => {
      if (own(row)) return true;
      const cap = scope.rooms.get(row.room_id);
      return cap !== undefined && pos(row) <= cap && visibility.get(row.room_id)!.canSee(row);
    });
    if (rows.length > limit) {
      rows = rows.slice(0, limit);
      end = pos(rows[rows.length - 1]!);
    }
    return { rows, end };
  }

  /** Receipts and typing of the rooms, the user's account data, and their room-mates' presence, changed in (after, upto]. */
  private async nonRoomEvents(userId: string, scope: Scope, after: number, upto: number, peekRoom: { roomId: string; peeking: boolean } | undefined): Promise<JsonObject[]> {
    if (upto <= after) return [];
    const out: JsonObject[] = [];
    const joined = [...scope.rooms].filter(([, cap]) => cap >= upto).map(([roomId]) => ({ roomId, after }));
    for (const [roomId, events] of await this.ephemeral.read(userId, joined, upto, undefined)) for (const e of events) out.push({ ...e, room_id: roomId });
    if (!scope.peeking) {
      for (const entry of await this.store.accountData.changed(userId, after, upto)) {
        if (entry.room_id === '' && entry.type === 'm.push_rules') continue;
        if (peekRoom && entry.room_id !== '' && entry.room_id !== peekRoom.roomId) continue;
        const event: JsonObject = { type: entry.type, content: JSON.parse(entry.content) as JsonObject };
        if (entry.room_id !== '') event.room_id = entry.room_id;
        out.push(event);
      }
    }
    // A peeker into a world_readable room sees its members' presence, as Synapse shows it (who is
    // in the room is readable to anyone there anyway); everyone else their room-mates'.
    const presence = scope.peeking
      ? await this.presence.syncEventsOf(undefined, userId, after, upto, [], await this.store.rooms.membersPresenceChanged(peekRoom!.roomId, after, upto))
      : await this.presence.syncEventsOf(await this.store.presence.get(userId), userId, after, upto);
    out.push(...presence.map(legacyPresence));
    return out;
  }

  /**
   * A room /events may read with room_id: one the user is joined to, or (peeking) one whose history is
   * world_readable now. Anything else, an unknown room too, is refused alike.
   */
  private async peekable(roomId: string, userId: string): Promise<{ roomId: string; peeking: boolean }> {
    const member = await this.store.rooms.member(roomId, userId);
    if (member?.membership === 'join') return { roomId, peeking: false };
    if ((await this.currentHistoryVisibility(roomId)) === 'world_readable') return { roomId, peeking: true };
    throw forbidden('You are not in this room and it is not world_readable');
  }

  private async currentHistoryVisibility(roomId: string): Promise<string | undefined> {
    const [entry] = await this.store.rooms.currentStateIds(roomId, [['m.room.history_visibility', '']]);
    const row = entry ? await this.store.events.get(entry.event_id) : undefined;
    if (!row) return undefined;
    const content = (this.store.events.parsed(row) as { content?: { history_visibility?: unknown } }).content;
    return historyVisibilityOf(content?.history_visibility);
  }

  /**
   * GET /initialSync: every room the user is joined or invited to (and with `archived`, those they
   * left), each as the room initialSync shows it, the presence of the user and their room-mates,
   * their global account data and the joined rooms' receipts. `end` (read first) continues in /events.
   */
  async initialSync(requester: Requester, options: { limit: number; archived: boolean }): Promise<JsonObject> {
    const { userId } = requester;
    const end = encodeSyncToken(await this.store.streams.head());
    const memberships = await this.store.rooms.roomsOf(userId, options.archived ? ['join', 'invite', 'leave'] : ['join', 'invite']);
    const publicRooms = new Set((await Promise.all(memberships.map((m) => this.store.rooms.get(m.room_id)))).filter((r) => r && Number(r.is_public)).map((r) => r!.room_id));
    const rooms: JsonObject[] = [];
    const invites = memberships.filter((m) => m.membership === 'invite');
    const inviteRows = new Map((await this.store.events.getMany(invites.map((m) => m.event_id))).map((r) => [r.event_id, r]));
    const inviteEvents = new Map((await this.serializer.serialize([...inviteRows.values()], { userId, deviceId: requester.deviceId }, this.clock.now(), new Set())).map((e) => [e.event_id, e]));
    for (const m of invites) {
      const room: JsonObject = { room_id: m.room_id, membership: 'invite', visibility: publicRooms.has(m.room_id) ? 'public' : 'private' };
      const invite = inviteEvents.get(m.event_id);
      if (invite) {
        room.invite = legacyEvent(invite);
        room.inviter = invite.sender;
      }
      rooms.push(room);
    }
    const others = memberships.filter((m) => m.membership !== 'invite');
    for (let i = 0; i < others.length; i += ROOM_CONCURRENCY) {
      // A room closed to the user since its membership was read (left meanwhile and forgotten) is left out.
      const closed = (err: unknown) => {
        if (err instanceof MatrixError && err.errcode === 'M_FORBIDDEN') return undefined;
        throw err;
      };
      const snapshots = await Promise.all(others.slice(i, i + ROOM_CONCURRENCY).map((m) => this.roomSnapshot(requester, m.room_id, options.limit).catch(closed)));
      for (const s of snapshots) if (s) rooms.push(formatRoom(s));
    }
    const joined = others.filter((m) => m.membership === 'join').map((m) => m.room_id);
    const receipts = await this.receipts(userId, joined);
    const mates = (await this.store.rooms.roomMates(userId)).filter((u) => u !== userId);
    const presence = (await this.presence.eventsOf([userId, ...mates])).filter((e) => e.sender === userId || e.content.presence !== 'offline');
    const accountData = (await this.store.accountData.changed(userId, 0, Number.MAX_SAFE_INTEGER))
      .filter((e) => e.room_id === '' && e.type !== 'm.push_rules')
      .map((e) => ({ type: e.type, content: JSON.parse(e.content) as JsonObject }));
    return { end, rooms, presence: presence.map(legacyPresence), account_data: accountData, receipts };
  }

  /**
   * GET /rooms/{roomId}/initialSync: the room reads' snapshot (state, latest messages, membership,
   * account data), with the room's receipts and (for a member) the presence of its current members;
   * a departed member gets neither, as they left.
   */
  async roomInitialSync(requester: Requester, roomId: string, limit: number | undefined): Promise<JsonObject> {
    return formatRoom(await this.roomSnapshot(requester, roomId, limit));
  }

  private async roomSnapshot(requester: Requester, roomId: string, limit: number | undefined): Promise<RoomSnapshot> {
    const room = await this.roomReads.initialSync(requester, roomId, limit);
    const departed = room.membership === 'leave' || room.membership === 'ban';
    if (departed) return { ...room, presence: [], receipts: [] };
    // Presence is for the room's current members: a stranger to a world_readable room gets none.
    const joined = room.membership === 'join' ? room.state.filter((e) => e.type === MEMBER && e.content.membership === 'join').map((e) => e.state_key!) : [];
    const [presence, receipts] = await Promise.all([this.presence.eventsOf(joined), this.receipts(requester.userId, [roomId])]);
    return { ...room, presence: presence.map(legacyPresence), receipts };
  }

  /** The rooms' m.receipt events (private receipts only the user's own), each with its room_id. */
  private async receipts(userId: string, roomIds: readonly string[]): Promise<JsonObject[]> {
    if (roomIds.length === 0) return [];
    const head = await this.store.streams.head();
    const events = await this.ephemeral.read(userId, roomIds.map((roomId) => ({ roomId, after: undefined })), head, { types: ['m.receipt'] });
    return [...events].flatMap(([roomId, list]) => list.map((e) => ({ ...e, room_id: roomId })));
  }

  /** GET /events/{eventId}: one event, readable as GET /rooms/{roomId}/event/{eventId} reads it; 404 otherwise. */
  async event(requester: Requester, eventId: string): Promise<JsonObject> {
    const row = await this.store.events.get(eventId);
    if (!row) throw notFound('Event not found');
    return legacyEvent(await this.roomReads.event(requester, row.room_id, eventId));
  }
}

/** The old client format of events (Synapse's "v1"): `user_id` for the sender, and some of `unsigned` at the top level too. */
export function legacyEvent(event: ClientEvent): JsonObject {
  const out: JsonObject = { ...event, user_id: event.sender };
  for (const key of ['age', 'redacted_because', 'replaces_state', 'prev_content']) if (key in event.unsigned) out[key] = event.unsigned[key];
  return out;
}

/** m.presence as these endpoints always gave it: the user in the content. */
function legacyPresence(event: { type: string; sender: string; content: JsonObject }): JsonObject {
  return { type: event.type, sender: event.sender, content: { ...event.content, user_id: event.sender } };
}

/** A room as the room initialSync shows it, before its events take the old format. */
type RoomSnapshot = RoomInitialSync & { presence: JsonObject[]; receipts: JsonObject[] };

function formatRoom(room: RoomSnapshot): JsonObject {
  return { ...room, messages: { ...room.messages, chunk: room.messages.chunk.map(legacyEvent) }, state: room.state.map(legacyEvent) };
}
