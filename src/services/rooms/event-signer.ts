import type { Pdu, RoomVersionId } from './pdu.js';

/** Turns a built PDU into a stored one: content hash, signature, event ID, and the JSON to keep. */
export interface EventSigner {
  finish(pdu: Pdu, version: RoomVersionId): { pdu: Pdu; eventId: string; json: string };
}
