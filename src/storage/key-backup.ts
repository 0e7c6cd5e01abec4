import { sql, type Kysely, type Selectable } from 'kysely';
import type { KeyBackupKeysTable, KeyBackupVersionsTable } from './client-state-schema.js';
import type { Database } from './schema.js';

export type BackupVersionRow = Selectable<KeyBackupVersionsTable>;
export type BackupKeyRow = Selectable<KeyBackupKeysTable>;

export class KeyBackupRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /** The newest backup that is not deleted. */
  current(userId: string): Promise<BackupVersionRow | undefined> {
    return this.db
      .selectFrom('key_backup_versions')
      .selectAll()
      .where('user_id', '=', userId)
      .where('deleted', '=', 0)
      .orderBy('version', 'desc')
      .limit(1)
      .executeTakeFirst();
  }

  get(userId: string, version: number): Promise<BackupVersionRow | undefined> {
    return this.db.selectFrom('key_backup_versions').selectAll().where('user_id', '=', userId).where('version', '=', version).where('deleted', '=', 0).executeTakeFirst();
  }

  /**
   * The next version number, in one statement. Two creations racing for the same number (possible
   * on Postgres) meet the primary key; the loser's insert does nothing and it takes the next one.
   */
  async create(userId: string, algorithm: string, authData: string): Promise<number> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const row = await this.db
        .insertInto('key_backup_versions')
        .columns(['user_id', 'version', 'algorithm', 'auth_data', 'etag', 'deleted'])
        .expression((eb) =>
          eb
            .selectFrom('key_backup_versions')
            .select([
              eb.val(userId).as('user_id'),
              sql<number>`coalesce(max(version), 0) + 1`.as('version'),
              eb.val(algorithm).as('algorithm'),
              eb.val(authData).as('auth_data'),
              sql.lit(0).as('etag'),
              sql.lit(0).as('deleted'),
            ])
            .where('user_id', '=', userId),
        )
        .onConflict((oc) => oc.doNothing())
        .returning('version')
        .executeTakeFirst();
      if (row) return Number(row.version);
    }
    throw new Error('could not allocate a key backup version');
  }

  async setAuthData(userId: string, version: number, authData: string): Promise<void> {
    await this.db.updateTable('key_backup_versions').set({ auth_data: authData }).where('user_id', '=', userId).where('version', '=', version).execute();
  }

  async bumpEtag(userId: string, version: number): Promise<void> {
    await this.db
      .updateTable('key_backup_versions')
      .set({ etag: sql<number>`etag + 1` })
      .where('user_id', '=', userId)
      .where('version', '=', version)
      .execute();
  }

  async delete(userId: string, version: number): Promise<boolean> {
    const result = await this.db
      .updateTable('key_backup_versions')
      .set({ deleted: 1 })
      .where('user_id', '=', userId)
      .where('version', '=', version)
      .where('deleted', '=', 0)
      .executeTakeFirst();
    await this.db.deleteFrom('key_backup_keys').where('user_id', '=', userId).where('version', '=', version).execute();
    return Number(result.numUpdatedRows) > 0;
  }

  async count(userId: string, version: number): Promise<number> {
    const row = await this.db
      .selectFrom('key_backup_keys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('user_id', '=', userId)
      .where('version', '=', version)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  keys(userId: string, version: number, roomId?: string, sessionId?: string): Promise<BackupKeyRow[]> {
    let query = this.db.selectFrom('key_backup_keys').selectAll().where('user_id', '=', userId).where('version', '=', version);
    if (roomId !== undefined) query = query.where('room_id', '=', roomId);
    if (sessionId !== undefined) query = query.where('session_id', '=', sessionId);
    return query.execute();
  }

  async put(row: BackupKeyRow): Promise<void> {
    const { first_message_index, forwarded_count, is_verified, session_data } = row;
    await this.db
      .insertInto('key_backup_keys')
      .values(row)
      .onConflict((oc) =>
        oc.columns(['user_id', 'version', 'room_id', 'session_id']).doUpdateSet({ first_message_index, forwarded_count, is_verified, session_data }),
      )
      .execute();
  }

  async deleteKeys(userId: string, version: number, roomId?: string, sessionId?: string): Promise<number> {
    let query = this.db.deleteFrom('key_backup_keys').where('user_id', '=', userId).where('version', '=', version);
    if (roomId !== undefined) query = query.where('room_id', '=', roomId);
    if (sessionId !== undefined) query = query.where('session_id', '=', sessionId);
    const result = await query.executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
