import type { Config } from '../../config/index.js';
import { forbidden, MatrixError, notFound } from '../../errors.js';
import type { RoomDirectoryRow } from '../../storage/directory.js';
import type { Store } from '../../storage/index.js';
import type { Requester } from '../devices.js';
import { powerLevelOf, requiredPowerLevel } from '../rooms/auth-rules.js';
import { currentStateEvents } from '../rooms/event-creator.js';
import { stateKeyOf, type RoomVersionId } from '../rooms/pdu.js';
import { PublicationRules } from './publication-rules.js';

export type Visibility = 'public' | 'private';

export interface PublicRoomsRequest {
  limit?: number | undefined;
  since?: string | undefined;
  server?: string | undefined;
  filter?: { generic_search_term?: string | undefined; room_types?: (string | null)[] | undefined } | undefined;
  /** Only the rooms an application service published for a third-party network (none here). */
  thirdPartyOnly?: boolean | undefined;
}

/** The spec's PublishedRoomsChunk. */
export interface PublicRoomsChunk {
  room_id: string;
  num_joined_members: number;
  world_readable: boolean;
  guest_can_join: boolean;
  name?: string;
  topic?: string;
  canonical_alias?: string;
  avatar_url?: string;
  join_rule?: string;
  room_type?: string;
}

export interface PublicRoomsResponse {
  chunk: PublicRoomsChunk[];
  next_batch?: string;
  prev_batch?: string;
  total_room_count_estimate: number;
}

const SERVER_NAME = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$/;

/**
 * The published room directory: /publicRooms (Synapse's order, filters and paging) and each room's
 * visibility in it, with who may publish decided by room_list_publication_rules.
 */
export class RoomDirectoryService {
  readonly publication: PublicationRules;

  constructor(
    private readonly store: Store,
    private readonly config: Config,
  ) {
    this.publication = new PublicationRules(config);
  }

  async publicRooms(request: PublicRoomsRequest): Promise<PublicRoomsResponse> {
    if (request.server !== undefined && request.server !== this.config.server_name) {
      if (!SERVER_NAME.test(request.server)) throw new MatrixError(400, 'M_INVALID_PARAM', `Invalid server name: ${request.server}`);
      // What Synapse answers for a server it may not federate with; this server federates with none.
      throw forbidden(`Federation denied with ${request.server}: this server lists only its own room directory`);
    }
    if (!this.config.enable_room_list_search || request.thirdPartyOnly) return { chunk: [], total_room_count_estimate: 0 };
    const limit = request.limit === undefined || request.limit === 0 ? undefined : request.limit;
    const bound = request.since === undefined ? undefined : parseBatchToken(request.since);
    const forwards = bound?.forwards ?? true;
    const searchTerm = request.filter?.generic_search_term || undefined;
    const roomTypes = request.filter?.room_types;
    let rows = await this.store.directory.publicRooms({ searchTerm, roomTypes, limit: limit === undefined ? undefined : limit + 1, bound, forwards });
    const more = limit !== undefined && rows.length > limit;
    if (more) rows = forwards ? rows.slice(0, limit) : rows.slice(rows.length - limit);
    const response: PublicRoomsResponse = {
      chunk: rows.map(chunkOf),
      // As Synapse: the count of every listed room of the asked types, whatever the search term.
      total_room_count_estimate: await this.store.directory.countPublicRooms({ roomTypes }),
    };
    const first = rows[0];
    const last = rows[rows.length - 1];
    if (first && last) {
      if (forwards ? more : bound !== undefined) response.next_batch = batchToken(last, true);
      if (forwards ? bound !== undefined : more) response.prev_batch = batchToken(first, false);
    }
    return response;
  }

  async visibility(roomId: string): Promise<{ visibility: Visibility }> {
    const room = await this.store.rooms.get(roomId);
    if (!room) throw notFound('Room not found');
    return { visibility: room.is_public === 1 ? 'public' : 'private' };
  }

  /**
   * As Synapse: a server admin, or a member with the power to set the room's canonical alias, may
   * change the room's entry; publishing must also pass the publication rules.
   */
  async setVisibility(requester: Requester, roomId: string, visibility: Visibility): Promise<void> {
    if (requester.isGuest) throw forbidden('Guests cannot edit the published room list');
    if (visibility === 'public' && !this.config.enable_room_list_search) throw forbidden('This user is not permitted to publish rooms to the room list');
    const room = await this.store.rooms.get(roomId);
    if (!room) throw notFound('Room not found');
    const admin = (await this.store.users.get(requester.userId))?.admin === 1;
    if (!admin) {
      const keys = [stateKeyOf('m.room.create', ''), stateKeyOf('m.room.power_levels', ''), stateKeyOf('m.room.member', requester.userId)];
      const state = await currentStateEvents(this.store, roomId, keys);
      if (state.get(stateKeyOf('m.room.member', requester.userId))?.content.membership !== 'join') throw forbidden('You are not in the room');
      const level = powerLevelOf(requester.userId, state, room.room_version as RoomVersionId);
      if (level < requiredPowerLevel('m.room.canonical_alias', true, state)) throw forbidden('This server requires you to be a moderator in the room to edit its room list entry');
    }
    if (visibility === 'public' && !(await this.mayPublish(requester.userId, roomId))) throw forbidden('Not allowed to publish room');
    await this.store.rooms.setPublic(roomId, visibility === 'public');
  }

  /** The publication rules for this room, over its local aliases and its canonical alias. */
  async mayPublish(userId: string, roomId: string, store: Store = this.store): Promise<boolean> {
    const aliases = await store.rooms.aliasesOf(roomId);
    const canonical = (await currentStateEvents(store, roomId, [stateKeyOf('m.room.canonical_alias', '')])).get(stateKeyOf('m.room.canonical_alias', ''))?.content.alias;
    if (typeof canonical === 'string') aliases.push(canonical);
    return this.publication.allows(userId, roomId, aliases);
  }
}

function chunkOf(row: RoomDirectoryRow): PublicRoomsChunk {
  const chunk: PublicRoomsChunk = {
    room_id: row.room_id,
    num_joined_members: row.joined_members,
    world_readable: row.history_visibility === 'world_readable',
    guest_can_join: row.guest_access === 'can_join',
  };
  if (row.name !== null) chunk.name = row.name;
  if (row.topic !== null) chunk.topic = row.topic;
  if (row.canonical_alias !== null && /^#[^:]+:.+$/.test(row.canonical_alias)) chunk.canonical_alias = row.canonical_alias;
  if (row.avatar_url !== null && row.avatar_url.startsWith('mxc://')) chunk.avatar_url = row.avatar_url;
  if (row.join_rule !== null) chunk.join_rule = row.join_rule;
  if (row.room_type !== null) chunk.room_type = row.room_type;
  return chunk;
}

/** A page boundary: the room a page ended at (forwards) or began at (backwards). Opaque to clients. */
function batchToken(row: RoomDirectoryRow, forwards: boolean): string {
  return Buffer.from(JSON.stringify([forwards ? 'f' : 'b', row.joined_members, row.room_id])).toString('base64url');
}

function parseBatchToken(token: string): { forwards: boolean; joined: number; roomId: string } {
  try {
    const value: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 3 && (value[0] === 'f' || value[0] === 'b') && Number.isSafeInteger(value[1]) && typeof value[2] === 'string') {
      return { forwards: value[0] === 'f', joined: value[1] as number, roomId: value[2] };
    }
  } catch {
    // falls through to the error below
  }
  throw new MatrixError(400, 'M_INVALID_PARAM', 'Invalid pagination token');
}
