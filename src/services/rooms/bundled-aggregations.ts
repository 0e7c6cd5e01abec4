import type { EventRow } from '../../storage/events.js';
import type { Store } from '../../storage/index.js';
import type { RelationRow, RelationSummary } from '../../storage/relations.js';
import type { JsonObject } from '../../validate.js';
import type { ClientEvent, Viewer } from './client-event.js';
import type { Pdu } from './pdu.js';
import { REFERENCE, relationOf, REPLACE, THREAD } from './relations.js';
import { RoomVisibility } from './visibility.js';

type Serialize = (rows: readonly EventRow[]) => Promise<ClientEvent[]>;

/**
 * Bundled aggregations (`unsigned.m.relations`, spec "Aggregations of child events") for a batch
 * of served events, with a fixed number of reads whatever the batch's size: a summary of every
 * event's children by relation type in one statement (the only read for a batch without relations),
 * the `m.replace` and `m.reference` children of the events that have some in another, then the rows
 * of the children that are served. Children the viewer may not see (history visibility)
 * or whose senders they ignore are left out. State events get no bundle (the spec's warning).
 */
export class RelationBundler {
  constructor(private readonly store: Store) {}

  async bundle(rows: readonly EventRow[], events: readonly ClientEvent[], viewer: Viewer | undefined, serialize: Serialize): Promise<void> {
    const parents = new Map<string, EventRow>();
    for (const row of rows) if (row.state_key === null) parents.set(row.event_id, row);
    if (parents.size === 0) return;
    const ids = [...parents.keys()];
    const sameRoom = (child: { relates_to_id: string; room_id: string }) => parents.get(child.relates_to_id)?.room_id === child.room_id;
    const types = [REPLACE, REFERENCE, THREAD];
    let summaries = (await this.store.relations.summaries(ids, types, viewer?.userId ?? '')).filter(sameRoom);
    if (summaries.length === 0) return;
    const ignored = viewer ? await this.ignoredUsers(viewer.userId) : [];
    if (ignored.length > 0) summaries = (await this.store.relations.summaries(ids, types, viewer!.userId, ignored)).filter(sameRoom);
    const threads = summaries.filter((s): s is RelationSummary & { latest_event_id: string } => s.rel_type === THREAD && s.latest_event_id !== null);
    const listed = [...new Set(summaries.filter((s) => s.rel_type !== THREAD).map((s) => s.relates_to_id))];
    const children = listed.length === 0 ? [] : (await this.store.relations.childrenOf(listed, [REPLACE, REFERENCE])).filter((c) => sameRoom(c) && !ignored.includes(c.sender));

    const edits = children.filter((c) => c.rel_type === REPLACE && this.editable(parents.get(c.relates_to_id)!, c));
    const referring = children.filter((c) => c.rel_type === REFERENCE).sort(byPosition);
    const wanted = [...edits.map((c) => c.event_id), ...referring.map((c) => c.event_id), ...threads.map((t) => t.latest_event_id)];
    const childRows = new Map((await this.store.events.getMany(wanted)).map((r) => [r.event_id, r]));
    const visibility = await this.visibilities([...children.map((c) => c.room_id), ...threads.map((t) => t.room_id)], viewer);
    const visible = (row: EventRow | undefined): row is EventRow => row !== undefined && row.redacted_by === null && visibility.get(row.room_id)!.canSee(row);

    const latestEdit = new Map<string, EventRow>();
    for (const edit of edits) {
      const row = childRows.get(edit.event_id);
      if (!visible(row) || !this.hasNewContent(row)) continue;
      const best = latestEdit.get(edit.relates_to_id);
      if (!best || moreRecent(row, best)) latestEdit.set(edit.relates_to_id, row);
    }
    const references = new Map<string, { event_id: string }[]>();
    for (const child of referring) {
      if (!visible(childRows.get(child.event_id))) continue;
      const list = references.get(child.relates_to_id) ?? [];
      list.push({ event_id: child.event_id });
      references.set(child.relates_to_id, list);
    }
    const latestInThread = new Map<string, EventRow>();
    const threadOf = new Map(threads.map((t) => [t.relates_to_id, t]));
    for (const thread of threads) {
      const row = childRows.get(thread.latest_event_id);
      if (visible(row)) latestInThread.set(thread.relates_to_id, row);
    }

    const served = new Map((await serialize([...latestEdit.values(), ...latestInThread.values()])).map((e) => [e.event_id, e]));
    for (const event of events) {
      const relations: JsonObject = {};
      const edit = latestEdit.get(event.event_id);
      if (edit && served.has(edit.event_id)) relations[REPLACE] = served.get(edit.event_id) as unknown as JsonObject;
      const thread = threadOf.get(event.event_id);
      const latest = latestInThread.get(event.event_id);
      if (thread && latest && served.has(latest.event_id)) {
        relations[THREAD] = {
          latest_event: served.get(latest.event_id) as unknown as JsonObject,
          count: thread.count,
          current_user_participated: thread.participated || parents.get(event.event_id)?.sender === viewer?.userId,
        };
      }
      const refs = references.get(event.event_id);
      if (refs) relations[REFERENCE] = { chunk: refs };
      if (Object.keys(relations).length > 0) event.unsigned['m.relations'] = relations;
    }
  }

  /**
   * Whether `child` may replace `parent` as far as the relation row tells (spec "Validity of
   * replacement events"): same sender and type, the original no state event, not redacted, not an edit itself.
   */
  private editable(parent: EventRow, child: RelationRow): boolean {
    if (parent.redacted_by !== null || parent.state_key !== null) return false;
    if (child.sender !== parent.sender || child.type !== parent.type) return false;
    return relationOf(this.pdu(parent).content)?.rel_type !== REPLACE;
  }

  /** A replacement carries `m.new_content`; an encrypted one carries it inside its ciphertext, which the server cannot check. */
  private hasNewContent(row: EventRow): boolean {
    const pdu = this.pdu(row);
    if (pdu.state_key !== undefined) return false;
    if (row.type === 'm.room.encrypted') return true;
    const newContent = pdu.content['m.new_content'];
    return newContent !== null && typeof newContent === 'object' && !Array.isArray(newContent);
  }

  private pdu(row: EventRow): Pdu {
    return this.store.events.parsed(row) as Pdu;
  }

  private async ignoredUsers(userId: string): Promise<string[]> {
    const json = await this.store.accountData.get(userId, '', 'm.ignored_user_list');
    if (json === undefined) return [];
    try {
      const list = (JSON.parse(json) as { ignored_users?: unknown }).ignored_users;
      return list !== null && typeof list === 'object' ? Object.keys(list) : [];
    } catch {
      return [];
    }
  }

  private async visibilities(roomIds: readonly string[], viewer: Viewer | undefined): Promise<Map<string, RoomVisibility>> {
    const out = new Map<string, RoomVisibility>();
    for (const roomId of new Set(roomIds)) out.set(roomId, await RoomVisibility.load(this.store.events, roomId, viewer?.userId));
    return out;
  }
}

/** The spec's order of replacements: later origin_server_ts, then the lexicographically larger event ID. */
function moreRecent(a: EventRow, b: EventRow): boolean {
  const ta = Number(a.origin_server_ts);
  const tb = Number(b.origin_server_ts);
  return ta !== tb ? ta > tb : a.event_id > b.event_id;
}

function byPosition(a: RelationRow, b: RelationRow): number {
  return Number(a.depth) - Number(b.depth) || Number(a.stream_pos) - Number(b.stream_pos);
}
