import type { JsonObject } from '../../validate.js';

/** The room versions this server creates and joins; others are refused with M_UNSUPPORTED_ROOM_VERSION. */
export const SUPPORTED_ROOM_VERSIONS = ['10', '11'] as const;
export type RoomVersionId = (typeof SUPPORTED_ROOM_VERSIONS)[number];

export function isSupportedRoomVersion(version: string): version is RoomVersionId {
  return (SUPPORTED_ROOM_VERSIONS as readonly string[]).includes(version);
}

/**
 * A persistent data unit in the v4+ event format (room versions 4 to 11): what is hashed, signed
 * and stored. The event ID is not part of it; it is the reference hash (see event-hash.ts).
 */
export interface Pdu {
  type: string;
  room_id: string;
  sender: string;
  content: JsonObject;
  state_key?: string;
  origin_server_ts: number;
  depth: number;
  prev_events: string[];
  auth_events: string[];
  hashes: { sha256: string };
  signatures: Record<string, Record<string, string>>;
  /** Room versions up to 10 only: the event a redaction redacts (v11 moves it into content). */
  redacts?: string;
  unsigned?: JsonObject;
}

/** A PDU with its ID, as the server keeps it in memory. */
export interface StoredEvent extends Pdu {
  event_id: string;
}

/** The key of a state entry: type and state_key, joined by a NUL (which neither may contain). */
export type StateKey = string;

export function stateKeyOf(type: string, stateKey: string): StateKey {
  return `${type}\u0000${stateKey}`;
}

export function splitStateKey(key: StateKey): [type: string, stateKey: string] {
  const at = key.indexOf('\u0000');
  return [key.slice(0, at), key.slice(at + 1)];
}

/** A room's state: the state event in force for each (type, state_key). */
export type RoomState = ReadonlyMap<StateKey, StoredEvent>;
