import type { Kysely, Selectable } from 'kysely';
import { anyOf } from './any-of.js';
import type { Engine } from './db.js';
import type { RoomTypingTable } from './ephemeral-schema.js';
import type { Database } from './schema.js';

export type TypingRow = Selectable<RoomTypingTable>;

const CHUNK = 500;

/** Who is typing in which room until when, and the stream position of each change. */
export class TypingRepo {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly engine: Engine,
  ) {}

  get(roomId: string, userId: string): Promise<TypingRow | undefined> {
    return this.db.selectFrom('room_typing').selectAll().where('room_id', '=', roomId).where('user_id', '=', userId).executeTakeFirst();
  }

  async put(row: TypingRow): Promise<void> {
    const { typing, expires_ts, stream_pos } = row;
    await this.db
      .insertInto('room_typing')
      .values(row)
      .onConflict((oc) => oc.columns(['room_id', 'user_id']).doUpdateSet({ typing, expires_ts, stream_pos }))
      .execute();
  }

  /** A longer timeout for a user still typing: no change anyone is told of. False if the row stopped meanwhile. */
  async extend(roomId: string, userId: string, expiresTs: number): Promise<boolean> {
    const result = await this.db
      .updateTable('room_typing')
      .set({ expires_ts: expiresTs })
      .where('room_id', '=', roomId)
      .where('user_id', '=', userId)
      .where('typing', '=', 1)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /** The user no longer types in the room (they left it), as of `position`; nothing when they were not typing. */
  async stopAt(roomId: string, userId: string, position: number): Promise<void> {
    await this.db
      .updateTable('room_typing')
      .set({ typing: 0, stream_pos: position })
      .where('room_id', '=', roomId)
      .where('user_id', '=', userId)
      .where('typing', '=', 1)
      .execute();
  }

  /**
   * Of these rooms, the rows a sync needs: those changed in (after, upto] (after 0: none) and those
   * of users typing at `now`.
   */
  async forSync(roomIds: readonly string[], after: number, upto: number, now: number): Promise<TypingRow[]> {
    const out: TypingRow[] = [];
    for (let i = 0; i < roomIds.length; i += CHUNK) {
      const rows = await this.db
        .selectFrom('room_typing')
        .selectAll()
        .where(anyOf(this.engine, 'room_id', roomIds.slice(i, i + CHUNK)))
        .where((eb) => eb.or([eb.and([eb('stream_pos', '>', after), eb('stream_pos', '<=', upto)]), eb.and([eb('typing', '=', 1), eb('expires_ts', '>', now)])]))
        .execute();
      out.push(...rows);
    }
    return out;
  }

  /** The rooms where someone's typing ran out by `now` and was not yet marked so. */
  async expiredRooms(now: number): Promise<string[]> {
    const rows = await this.db.selectFrom('room_typing').select('room_id').distinct().where('typing', '=', 1).where('expires_ts', '<=', now).execute();
    return rows.map((r) => r.room_id);
  }

  /** Marks every typing that ran out by `now` as stopped at `position`. */
  async expire(now: number, position: number): Promise<void> {
    await this.db.updateTable('room_typing').set({ typing: 0, stream_pos: position }).where('typing', '=', 1).where('expires_ts', '<=', now).execute();
  }

  /** The earliest time someone's typing runs out, if anyone is typing. */
  async nextExpiry(): Promise<number | undefined> {
    const row = await this.db.selectFrom('room_typing').select((eb) => eb.fn.min('expires_ts').as('next')).where('typing', '=', 1).executeTakeFirst();
    return row?.next === null || row?.next === undefined ? undefined : Number(row.next);
  }
}
