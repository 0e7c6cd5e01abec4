import type { Db } from './db.js';
import type { EventRow } from './events.js';

/** The columns of an event row that can change after it is stored: always read from the database. */
export const MUTABLE_EVENT_COLUMNS = ['redacted_by', 'outlier', 'soft_failed', 'rejection_reason', 'sender_erased'] as const;
type Mutable = (typeof MUTABLE_EVENT_COLUMNS)[number];

/** What a read returns for an event the cache holds: its ID and the columns that can change. */
export type EventKey = Pick<EventRow, 'event_id' | Mutable>;
/** The columns of an event row that never change once stored, the PDU among them. */
export type FixedEventColumns = Omit<EventRow, Mutable>;

interface Entry {
  fixed: FixedEventColumns;
  /** Read since it was kept or last spared: eviction spares it once (the CLOCK approximation of LRU). */
  used: boolean;
  /** The PDU parsed (and deep-frozen: every reader shares it), once someone asked. */
  parsed?: unknown;
  /** What the entry counts against the budget, in estimated bytes of heap. */
  cost: number;
}

/** Estimated bytes of heap the cache may hold. */
const DEFAULT_BUDGET = 48 * 1024 * 1024;
/**
 * Heap per character of PDU, measured on the benchmark's events (V8, one-byte strings): a row read
 * whole about 1.7 (its PDU and the other columns' strings), its parsed PDU about 1.5 more.
 */
const ROW_COST = 1.7;
const PARSED_COST = 1.5;

/**
 * The unchanging part of recently read events (every column but redacted_by, the federation
 * flags and the sender's erasure), with their parsed PDUs, by event ID, within about 48 MB of heap, the least recently used
 * going first (approximately: CLOCK, see evict). Reads that find an event here still read its
 * changing columns from the database, so the cache needs no invalidation across processes sharing
 * one database: a redaction by another process is seen on the next read. Reading those few columns instead of the row costs a fraction (drivers build
 * each column of each row), and the parse of the PDU is done once per event.
 *
 * An event is cached only from a read (or the insert) of this process; one whose transaction later
 * rolled back is never served, since readers ask the database which events exist first.
 */
export class EventCache {
  private readonly entries = new Map<string, Entry>();
  private used = 0;

  constructor(private readonly budget = DEFAULT_BUDGET) {}

  get size(): number {
    return this.entries.size;
  }

  has(eventId: string): boolean {
    return this.entries.has(eventId);
  }

  /** The event's unchanging columns, marking it used. */
  fixed(eventId: string): FixedEventColumns | undefined {
    const entry = this.entries.get(eventId);
    if (!entry) return undefined;
    entry.used = true;
    return entry.fixed;
  }

  /** Keeps a row read whole (its changing columns are not kept). */
  put(row: FixedEventColumns): void {
    if (this.entries.has(row.event_id)) return;
    const { event_id, room_id, stream_pos, depth, type, state_key, sender, origin_server_ts, pdu, state_group, replaces_state, membership, history_visibility } = row;
    const fixed: FixedEventColumns = { event_id, room_id, stream_pos, depth, type, state_key, sender, origin_server_ts, pdu, state_group, replaces_state, membership, history_visibility };
    const entry: Entry = { fixed, used: false, cost: Math.ceil(ROW_COST * pdu.length) };
    this.entries.set(event_id, entry);
    this.used += entry.cost;
    this.evict();
  }

  /**
   * The row's PDU parsed, from the cache when it holds this event (and this very PDU); the object is
   * frozen, shared by every reader: copy before changing anything in it.
   */
  parsed(row: Pick<EventRow, 'event_id' | 'pdu'>): unknown {
    const entry = this.entries.get(row.event_id);
    if (!entry || entry.fixed.pdu !== row.pdu) return JSON.parse(row.pdu) as unknown;
    entry.used = true;
    if (entry.parsed === undefined) {
      entry.parsed = deepFreeze(JSON.parse(row.pdu) as unknown);
      const more = Math.ceil(PARSED_COST * row.pdu.length);
      this.used += more;
      entry.cost += more;
      this.evict();
    }
    return entry.parsed;
  }

  clear(): void {
    this.entries.clear();
    this.used = 0;
  }

  delete(eventId: string): void {
    const entry = this.entries.get(eventId);
    if (!entry) return;
    this.entries.delete(eventId);
    this.used -= entry.cost;
  }

  /**
   * Down to 90% of the budget, oldest first; an entry read since it was kept (or last spared) is
   * spared once and goes to the back. Hits then cost a flag, not a move in the map.
   */
  private evict(): void {
    if (this.used <= this.budget) return;
    for (const [id, entry] of this.entries) {
      this.entries.delete(id);
      if (entry.used) {
        entry.used = false;
        this.entries.set(id, entry);
        continue;
      }
      this.used -= entry.cost;
      if (this.used <= this.budget * 0.9) break;
    }
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

const caches = new WeakMap<Db, EventCache>();

/** The event cache of one database (shared by every Store, transactions included, of this process). */
export function eventCacheOf(db: Db): EventCache {
  let cache = caches.get(db);
  if (!cache) caches.set(db, (cache = new EventCache()));
  return cache;
}
