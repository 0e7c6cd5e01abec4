import { canonicalJson } from './canonical-json.js';
import { hashSignAndIdentify, type JsonSigner } from './event-hash.js';
import type { Pdu, RoomVersionId } from './pdu.js';

/** Turns a built PDU into a stored one: content hash, signature, event ID, and the JSON to keep. */
export interface EventSigner {
  finish(pdu: Pdu, version: RoomVersionId): { pdu: Pdu; eventId: string; json: string };
}

/** Signs events with this server's key. */
export function serverEventSigner(serverName: string, key: JsonSigner): EventSigner {
  return {
    finish(draft, version) {
      const { hashes: _h, signatures: _s, unsigned: _u, ...rest } = draft;
      const { pdu, eventId } = hashSignAndIdentify(rest, version, serverName, key);
      return { pdu, eventId, json: canonicalJson(pdu) };
    },
  };
}
