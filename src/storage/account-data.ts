import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface AccountDataEntry {
  room_id: string;
  type: string;
  content: string;
  stream_pos: number;
}

export class AccountDataRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async put(userId: string, roomId: string, type: string, content: string, streamPos: number): Promise<void> {
    await this.db
      .insertInto('account_data')
      .values({ user_id: userId, room_id: roomId, type, content, stream_pos: streamPos })
      .onConflict((oc) => oc.columns(['user_id', 'room_id', 'type']).doUpdateSet({ content, stream_pos: streamPos }))
      .execute();
  }

  async get(userId: string, roomId: string, type: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('account_data')
      .select('content')
      .where('user_id', '=', userId)
      .where('room_id', '=', roomId)
      .where('type', '=', type)
      .executeTakeFirst();
    return row?.content;
  }

  /** Entries changed in (after, upto]; every entry when `after` is 0. */
  changed(userId: string, after: number, upto: number): Promise<AccountDataEntry[]> {
    return this.db
      .selectFrom('account_data')
      .select(['room_id', 'type', 'content', 'stream_pos'])
      .where('user_id', '=', userId)
      .where('stream_pos', '>', after)
      .where('stream_pos', '<=', upto)
      .orderBy('stream_pos')
      .execute();
  }
}
