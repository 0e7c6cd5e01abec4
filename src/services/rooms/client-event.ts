import type { EventRow } from '../../storage/events.js';
import type { Store } from '../../storage/index.js';
import type { JsonObject } from '../../validate.js';
import { RelationBundler } from './bundled-aggregations.js';
import type { Pdu } from './pdu.js';
import { redactEvent } from './redaction.js';
import { RoomVisibility } from './visibility.js';

/** An event as clients see it (ClientEvent in the spec): the PDU's client fields and `unsigned`. */
export interface ClientEvent {
  event_id: string;
  type: string;
  room_id: string;
  sender: string;
  content: JsonObject;
  origin_server_ts: number;
  state_key?: string;
  redacts?: string;
  unsigned: JsonObject;
}

/** Who is reading: the transaction ID of an event goes only to the device that sent it. */
export interface Viewer {
  userId: string;
  deviceId?: string;
}

/**
 * Serves stored events to a viewer: redacted ones redacted (with `redacted_because`), those of an
 * erased account redacted to a viewer who was not joined when they were sent, state events
 * with `prev_content` and `replaces_state`, the sending device's `transaction_id`, `age`, and the
 * bundled aggregations of relations (`m.relations`). The reads it needs for a batch (replaced
 * state, redactions, transaction IDs, relations) are made once per batch.
 */
export class ClientEventSerializer {
  /** Room versions never change; rooms are never deleted while this process runs (a purge would evict). */
  private readonly versions = new Map<string, string>();

  private readonly bundler: RelationBundler;

  constructor(private readonly store: Store) {
    this.bundler = new RelationBundler(store);
  }

  async roomVersion(roomId: string): Promise<string> {
    let version = this.versions.get(roomId);
    if (version === undefined) {
      version = (await this.store.rooms.get(roomId))?.room_version ?? '11';
      if (this.versions.size > 100_000) this.versions.clear();
      this.versions.set(roomId, version);
    }
    return version;
  }

  /** `bundleOnly`: when given, only these events get bundled aggregations (sync bundles only limited timelines). */
  async serialize(rows: readonly EventRow[], viewer: Viewer | undefined, now: number, bundleOnly?: ReadonlySet<string>): Promise<ClientEvent[]> {
    return this.serializeAt(rows, viewer, now, 0, bundleOnly);
  }

  /**
   * `level`: how deep in bundled aggregations these events are. The events bundled with an event
   * (its latest edit, its thread's latest event) get their own bundles, theirs none: a thread's
   * latest event cannot be a thread root itself, so nothing is lost.
   */
  private async serializeAt(rows: readonly EventRow[], viewer: Viewer | undefined, now: number, level: number, bundleOnly?: ReadonlySet<string>): Promise<ClientEvent[]> {
    const related = [...rows.flatMap((r) => [r.replaces_state, r.redacted_by]).filter((id): id is string => id !== null)];
    const relatedRows = new Map((await this.store.events.getMany(related)).map((r) => [r.event_id, r]));
    const erased = await this.erasedForViewer(rows, viewer);
    const txnIds = viewer?.deviceId ? await this.store.events.txnIdsOf(viewer.userId, viewer.deviceId, rows.filter((r) => r.sender === viewer.userId).map((r) => r.event_id)) : new Map<string, string>();
    const out: ClientEvent[] = [];
    for (const row of rows) {
      const version = await this.roomVersion(row.room_id);
      const event = toClientEvent(row, version, now, this.pdu(row), erased.has(row.event_id));
      const redaction = row.redacted_by ? relatedRows.get(row.redacted_by) : undefined;
      if (redaction) event.unsigned.redacted_because = toClientEvent(redaction, version, now, this.pdu(redaction));
      const replaced = row.replaces_state ? relatedRows.get(row.replaces_state) : undefined;
      if (replaced) {
        event.unsigned.replaces_state = replaced.event_id;
        event.unsigned.prev_content = toClientEvent(replaced, version, now, this.pdu(replaced)).content;
        event.unsigned.prev_sender = replaced.sender;
      }
      const txnId = txnIds.get(row.event_id);
      if (txnId !== undefined) event.unsigned.transaction_id = txnId;
      out.push(event);
    }
    const bundled = bundleOnly ? rows.filter((r) => bundleOnly.has(r.event_id)) : rows;
    if (level < 2 && bundled.length > 0) await this.bundler.bundle(bundled, out, viewer, (children) => this.serializeAt(children, viewer, now, level + 1));
    return out;
  }

  /**
   * The events of erased accounts that this viewer gets redacted: those sent while the viewer's
   * membership was not join (as Synapse serves erasure). The viewer's membership history is read
   * (one statement) only for the rooms of such events, which few batches have.
   */
  private async erasedForViewer(rows: readonly EventRow[], viewer: Viewer | undefined): Promise<Set<string>> {
    const out = new Set<string>();
    const candidates = rows.filter((r) => Number(r.sender_erased) === 1 && r.sender !== viewer?.userId);
    if (candidates.length === 0) return out;
    const roomIds = [...new Set(candidates.map((r) => r.room_id))];
    const histories = viewer === undefined ? new Map<string, never[]>() : await this.store.events.membershipHistories(roomIds, viewer.userId);
    const rooms = new Map(roomIds.map((id) => [id, new RoomVisibility(viewer?.userId, histories.get(id) ?? [])]));
    for (const row of candidates) if (rooms.get(row.room_id)!.membershipBefore(Number(row.stream_pos)) !== 'join') out.add(row.event_id);
    return out;
  }

  /** The row's PDU parsed, through the event cache. */
  private pdu(row: EventRow): Pdu {
    return this.store.events.parsed(row) as Pdu;
  }
}

/**
 * One stored event in the client format, redacted if it was (or if `erased`: its sender's account
 * was erased and the viewer may see only what a redaction keeps); without the fields that need other
 * reads. `parsed` is the row's PDU already parsed (it may be shared: it is not changed, and the
 * event's `content` is that object, not a copy).
 */
export function toClientEvent(row: EventRow, version: string, now: number, parsed?: Pdu, erased = false): ClientEvent {
  let pdu = parsed ?? (JSON.parse(row.pdu) as Pdu);
  if (row.redacted_by || erased) pdu = redactEvent(pdu, version);
  const event: ClientEvent = {
    event_id: row.event_id,
    type: pdu.type,
    room_id: pdu.room_id,
    sender: pdu.sender,
    content: pdu.content,
    origin_server_ts: pdu.origin_server_ts,
    unsigned: { age: Math.max(0, now - pdu.origin_server_ts) },
  };
  if (pdu.state_key !== undefined) event.state_key = pdu.state_key;
  // v11 moved `redacts` into content; clients written for earlier versions read it at the top level.
  const redacts = pdu.redacts ?? (typeof pdu.content.redacts === 'string' ? pdu.content.redacts : undefined);
  if (pdu.type === 'm.room.redaction' && redacts !== undefined) event.redacts = redacts;
  return event;
}
