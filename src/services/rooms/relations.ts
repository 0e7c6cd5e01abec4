import { MatrixError } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import type { StoredEvent } from './pdu.js';

/** The relation types this server aggregates into `unsigned.m.relations`. */
export const REPLACE = 'm.replace';
export const THREAD = 'm.thread';
export const REFERENCE = 'm.reference';
/** Not aggregated (spec v1.7), but a sender's duplicate is refused. */
export const ANNOTATION = 'm.annotation';

export interface Relation {
  rel_type: string;
  event_id: string;
  key?: string;
}

/**
 * The relation an event's content declares: `m.relates_to` with a string `rel_type` and
 * `event_id`. A reply alone (`m.in_reply_to`, no `rel_type`) is not one, as the spec says.
 */
export function relationOf(content: unknown): Relation | undefined {
  if (content === null || typeof content !== 'object') return undefined;
  const relatesTo = (content as Record<string, unknown>)['m.relates_to'];
  if (relatesTo === null || typeof relatesTo !== 'object' || Array.isArray(relatesTo)) return undefined;
  const { rel_type: relType, event_id: eventId, key } = relatesTo as Record<string, unknown>;
  if (typeof relType !== 'string' || typeof eventId !== 'string' || !eventId.startsWith('$')) return undefined;
  return typeof key === 'string' ? { rel_type: relType, event_id: eventId, key } : { rel_type: relType, event_id: eventId };
}

/**
 * The write path's one call for relations, made for each new event in its transaction once the
 * event's row is stored: a redaction removes the relation of the event it redacts (`redacted`, the
 * event the write marked redacted: a redaction event sent through /send redacts nothing) (a redacted child
 * no longer relates, spec "Aggregations of child events"); an event with a relation stores it. A
 * thread may not start from an event that has a relation itself: 400 M_UNKNOWN, as the spec's
 * threading module says (the transaction then undoes the event); nor may a sender repeat an
 * annotation (same parent, event type and key) they have not redacted: 400 M_DUPLICATE_ANNOTATION.
 */
export async function recordRelations(store: Store, event: StoredEvent, streamPos: number, redacted: string | undefined): Promise<void> {
  if (event.type === 'm.room.redaction') {
    if (redacted !== undefined) await store.relations.delete(redacted, event.room_id);
    return;
  }
  const relation = relationOf(event.content);
  if (!relation) return;
  if (relation.rel_type === THREAD && (await store.relations.relationOf(relation.event_id))) {
    throw new MatrixError(400, 'M_UNKNOWN', 'Cannot start a thread from an event with a relation');
  }
  if (relation.rel_type === ANNOTATION && relation.key !== undefined && (await store.relations.hasAnnotation(relation.event_id, event.type, relation.key, event.sender))) {
    throw new MatrixError(400, 'M_DUPLICATE_ANNOTATION', 'You already sent this annotation');
  }
  await store.relations.insert({
    event_id: event.event_id,
    relates_to_id: relation.event_id,
    rel_type: relation.rel_type,
    room_id: event.room_id,
    type: event.type,
    sender: event.sender,
    aggregation_key: relation.key ?? null,
    depth: event.depth,
    stream_pos: streamPos,
  });
}
