import type { EventRow } from '../../storage/events.js';
import type { Store } from '../../storage/index.js';
import { isObject } from '../../validate.js';

/** The thread ID of receipts on the main timeline (events in no thread, thread roots among them). */
export const MAIN_THREAD = 'main';

function relationOf(row: Pick<EventRow, 'pdu'>): { relType: string; eventId: string } | undefined {
  const content = (JSON.parse(row.pdu) as { content?: unknown }).content;
  const relation = isObject(content) ? content['m.relates_to'] : undefined;
  if (!isObject(relation) || typeof relation.rel_type !== 'string' || typeof relation.event_id !== 'string') return undefined;
  return { relType: relation.rel_type, eventId: relation.event_id };
}

/**
 * Whether a receipt on `event` may name `threadId`, as the spec asks ("the event_id is related to the
 * thread_id"). An event with an m.thread relation is in that thread, and so is one related (edit,
 * reaction, reference) to such an event; every other event is on the main timeline, and may also be
 * acknowledged in the thread of the root it is or relates to. Whether that root has replies yet is not
 * checked: finding replies needs a relations index, and a receipt on a root whose thread is empty
 * misleads no one.
 */
export async function receiptFitsThread(store: Store, event: EventRow, threadId: string): Promise<boolean> {
  const relation = relationOf(event);
  let thread: string | undefined;
  let related: string | undefined;
  if (relation?.relType === 'm.thread') {
    thread = relation.eventId;
  } else if (relation) {
    const parent = await store.events.get(relation.eventId);
    const parentRelation = parent && parent.room_id === event.room_id ? relationOf(parent) : undefined;
    if (parentRelation?.relType === 'm.thread') thread = parentRelation.eventId;
    else related = relation.eventId;
  }
  if (threadId === MAIN_THREAD) return thread === undefined;
  if (thread !== undefined) return thread === threadId;
  return threadId === event.event_id || threadId === related;
}
