import type { CompiledQuery } from 'kysely';
import type { Store } from '../../storage/index.js';
import { searchEntryOf } from '../../storage/search.js';
import type { StoredEvent } from './pdu.js';

/**
 * The write path's one call for the search index, made for each new event in its transaction
 * (before the event takes its stream position: the row needs none): a redaction takes the event it
 * redacts (`redacted`, as the write marked it) out of the index; an event with text to search is
 * added to it. A search right after the send's answer finds the event. On PostgreSQL the rows go
 * with the commit (Store.deferToCommit, in the order written): nothing in the write reads them, and
 * the room's lock is held for a round trip less.
 */
export async function indexForSearch(store: Store, event: StoredEvent, redacted: string | undefined): Promise<void> {
  const write = async (statement: CompiledQuery) => {
    if (store.canDeferToCommit) store.deferToCommit(statement);
    else await store.search.run(statement);
  };
  if (redacted !== undefined) await write(store.search.deleteStatement(redacted, event.room_id));
  const entry = searchEntryOf(event);
  if (entry) await write(store.search.insertStatement(entry));
}
