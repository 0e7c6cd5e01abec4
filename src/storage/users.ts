import type { Kysely, Selectable } from 'kysely';
import { DirectoryRepo, userDirectoryWords } from './directory.js';
import type { Database, UsersTable } from './schema.js';

export type UserRow = Selectable<UsersTable>;

/** Users; every write of a display name (or a deactivation) also rewrites the words the user directory finds the user by. */
export class UsersRepo {
  private readonly directory: DirectoryRepo;

  constructor(private readonly db: Kysely<Database>) {
    this.directory = new DirectoryRepo(db);
  }

  /**
   * Creates a user; false when the user ID is taken (the database decides, so races are safe).
   * ON CONFLICT keeps a surrounding Postgres transaction usable, where a caught error would abort it.
   */
  async create(row: { user_id: string; password_hash: string | null; created_ts: number; is_guest: boolean; displayname?: string | null }): Promise<boolean> {
    const result = await this.db
      .insertInto('users')
      .values({ ...row, is_guest: row.is_guest ? 1 : 0, deactivated: 0, displayname: row.displayname ?? null, avatar_url: null })
      .onConflict((oc) => oc.column('user_id').doNothing())
      .executeTakeFirst();
    const created = Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
    if (created) await this.directory.setUserWords(row.user_id, userDirectoryWords(row.user_id, row.displayname ?? null));
    return created;
  }

  get(userId: string): Promise<UserRow | undefined> {
    return this.db.selectFrom('users').selectAll().where('user_id', '=', userId).executeTakeFirst();
  }

  async exists(userId: string): Promise<boolean> {
    const row = await this.db.selectFrom('users').select('user_id').where('user_id', '=', userId).executeTakeFirst();
    return row !== undefined;
  }

  /** A guest account becomes a full one with this password; false when it is no (active) guest. */
  async upgradeGuest(userId: string, hash: string): Promise<boolean> {
    const result = await this.db
      .updateTable('users')
      .set({ is_guest: 0, password_hash: hash })
      .where('user_id', '=', userId)
      .where('is_guest', '=', 1)
      .where('deactivated', '=', 0)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async setPasswordHash(userId: string, hash: string | null): Promise<void> {
    await this.db.updateTable('users').set({ password_hash: hash }).where('user_id', '=', userId).execute();
  }

  async setProfileField(userId: string, field: 'displayname' | 'avatar_url', value: string | null): Promise<void> {
    await this.db.updateTable('users').set({ [field]: value }).where('user_id', '=', userId).execute();
    if (field === 'displayname') await this.directory.setUserWords(userId, userDirectoryWords(userId, value));
  }

  async markDeactivated(userId: string): Promise<void> {
    await this.db
      .updateTable('users')
      .set({ deactivated: 1, password_hash: null, displayname: null, avatar_url: null })
      .where('user_id', '=', userId)
      .execute();
    await this.directory.setUserWords(userId, []);
  }

  /** The highest all-digit localpart in use, for generating numeric (guest or default) user IDs. */
  async countUsers(): Promise<number> {
    const row = await this.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }
}
