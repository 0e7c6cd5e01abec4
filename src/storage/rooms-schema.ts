import type { Generated } from 'kysely';

/** Tables of rooms and their events (migration 0010). JSON documents are stored as text. */

export interface RoomsTable {
  room_id: string;
  room_version: string;
  creator: string;
  created_ts: number;
  /** 1 when the room is published in the room directory. */
  is_public: number;
  /** The state group of the room's current state. */
  state_group: number;
  /** The depth of the room's latest event. */
  depth: number;
  /** The stream position of the room's latest event: which rooms changed since a sync token. */
  last_pos: number;
}

export interface EventsTable {
  event_id: string;
  room_id: string;
  stream_pos: number;
  depth: number;
  type: string;
  state_key: string | null;
  sender: string;
  origin_server_ts: number;
  /** The PDU as signed: canonical JSON, without `unsigned`. */
  pdu: string;
  /** The state after this event (for a non-state event, the same as before it). */
  state_group: number;
  /** For a state event, the event it replaced in the room's state. */
  replaces_state: string | null;
  /** For m.room.member events, content.membership. */
  membership: string | null;
  /** The history visibility in force before this event. */
  history_visibility: string;
  /** The redaction event that redacted this one. */
  redacted_by: string | null;
  outlier: number;
  soft_failed: number;
  rejection_reason: string | null;
  /** 1 while the sender's account is erased (migration 0026): served redacted to whoever was not joined at the event. */
  sender_erased: Generated<number>;
}

export interface EventEdgesTable {
  event_id: string;
  prev_event_id: string;
}

export interface EventAuthTable {
  event_id: string;
  auth_id: string;
}

export interface ForwardExtremitiesTable {
  room_id: string;
  event_id: string;
}

/** A state snapshot, stored as the entries that differ from prev_group (all of them when hops is 0). */
export interface StateGroupsTable {
  id: number;
  room_id: string;
  prev_group: number | null;
  hops: number;
}

export interface StateGroupEntriesTable {
  state_group: number;
  type: string;
  state_key: string;
  event_id: string;
}

export interface CurrentStateTable {
  room_id: string;
  type: string;
  state_key: string;
  event_id: string;
}

/** Each user's current membership of each room they have had one in. */
export interface RoomMembersTable {
  room_id: string;
  user_id: string;
  membership: string;
  event_id: string;
  stream_pos: number;
  sender: string;
  displayname: string | null;
  avatar_url: string | null;
  /** 1 once the user forgot the room (after leaving it). */
  forgotten: number;
}

export interface RoomAliasesTable {
  alias: string;
  room_id: string;
  creator: string;
  created_ts: number;
}

/** The event a device's transaction produced, so that a retried request answers the same event. */
export interface EventTxnsTable {
  user_id: string;
  device_id: string;
  /** The transaction ID with what it was for (room and path), so IDs of different endpoints never collide. */
  txn_key: string;
  event_id: string;
  created_ts: number;
}

export interface RoomTables {
  rooms: RoomsTable;
  events: EventsTable;
  event_edges: EventEdgesTable;
  event_auth: EventAuthTable;
  forward_extremities: ForwardExtremitiesTable;
  state_groups: StateGroupsTable;
  state_group_entries: StateGroupEntriesTable;
  current_state: CurrentStateTable;
  room_members: RoomMembersTable;
  room_aliases: RoomAliasesTable;
  event_txns: EventTxnsTable;
}
