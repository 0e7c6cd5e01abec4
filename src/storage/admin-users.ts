import { sql, type Expression, type Kysely, type SqlBool } from 'kysely';
import type { Database } from './schema.js';
import { DirectoryRepo, userDirectoryWords } from './directory.js';

/** The columns the admin API's user list sorts by (Synapse's order_by values that Myelin has data for). */
export type UserOrder = 'name' | 'is_guest' | 'admin' | 'deactivated' | 'displayname' | 'avatar_url' | 'creation_ts' | 'last_seen_ts';

export interface UserListQuery {
  /** The server name: every local user ID ends with ':' and it. */
  serverName: string;
  /** Part of the localpart or of the display name, case-insensitively. */
  name?: string | undefined;
  /** Part of the user ID, case-insensitively (ignored when `name` is given, as in Synapse). */
  userId?: string | undefined;
  guests: boolean;
  deactivated: boolean;
  /** true: only admins; false: no admins; undefined: both. */
  admins?: boolean | undefined;
  orderBy: UserOrder;
  dir: 'f' | 'b';
  from: number;
  limit: number;
}

export interface UserListRow {
  user_id: string;
  is_guest: number;
  admin: number;
  deactivated: number;
  erased: number;
  displayname: string | null;
  avatar_url: string | null;
  created_ts: number;
  last_seen_ts: number | null;
}

/** `value` for a LIKE pattern that matches it anywhere, its wildcards taken literally (escaped with a backslash). */
function containing(value: string): string {
  return `%${value.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** Users as the admin API reads and changes them: admin and erased flags, paged lists. */
export class AdminUsersRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async setAdmin(userId: string, admin: boolean): Promise<void> {
    await this.db.updateTable('users').set({ admin: admin ? 1 : 0 }).where('user_id', '=', userId).execute();
  }

  /** Marks the account erased (or not), and every event it sent with it: how they are served depends on it. */
  async setErased(userId: string, erased: boolean): Promise<void> {
    await this.db.updateTable('users').set({ erased: erased ? 1 : 0 }).where('user_id', '=', userId).execute();
    await this.db.updateTable('events').set({ sender_erased: erased ? 1 : 0 }).where('sender', '=', userId).where('sender_erased', '=', erased ? 0 : 1).execute();
  }

  /** Makes a deactivated account usable again (it comes back without devices, 3PIDs or profile). */
  async reactivate(userId: string): Promise<void> {
    await this.db.updateTable('users').set({ deactivated: 0 }).where('user_id', '=', userId).execute();
    await this.setErased(userId, false);
    // Found again by its localpart (its display name, if one is set again, follows through UsersRepo).
    await new DirectoryRepo(this.db).setUserWords(userId, userDirectoryWords(userId, null));
  }

  /** When any of the user's devices was last seen; null when none was. */
  async lastSeen(userId: string): Promise<number | null> {
    const row = await this.db.selectFrom('devices').select((eb) => eb.fn.max('last_seen_ts').as('ts')).where('user_id', '=', userId).executeTakeFirst();
    return row?.ts === null || row?.ts === undefined ? null : Number(row.ts);
  }

  /** One page of local users and how many match in all. */
  async list(query: UserListQuery): Promise<{ rows: UserListRow[]; total: number }> {
    const lastSeen = sql<number | null>`(SELECT MAX(d.last_seen_ts) FROM devices d WHERE d.user_id = users.user_id)`;
    const filters: Expression<SqlBool>[] = [];
    if (query.name !== undefined) {
      const pattern = containing(query.name);
      const localpart = sql<string>`substr(users.user_id, 2, length(users.user_id) - ${2 + query.serverName.length})`;
      filters.push(sql<SqlBool>`(lower(${localpart}) LIKE ${pattern} ESCAPE '\\' OR lower(users.displayname) LIKE ${pattern} ESCAPE '\\')`);
    } else if (query.userId !== undefined) {
      filters.push(sql<SqlBool>`lower(users.user_id) LIKE ${containing(query.userId)} ESCAPE '\\'`);
    }
    if (!query.guests) filters.push(sql<SqlBool>`users.is_guest = 0`);
    if (!query.deactivated) filters.push(sql<SqlBool>`users.deactivated = 0`);
    if (query.admins !== undefined) filters.push(sql<SqlBool>`users.admin = ${query.admins ? 1 : 0}`);
    const where = (eb: { and: (e: Expression<SqlBool>[]) => Expression<SqlBool> }) => eb.and(filters);

    const counted = await this.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).where(where).executeTakeFirstOrThrow();
    const direction = query.dir === 'b' ? sql`DESC` : sql`ASC`;
    // Texts and times that may be missing sort as the smallest value on both engines.
    const orderColumn = {
      name: sql`users.user_id`,
      is_guest: sql`users.is_guest`,
      admin: sql`users.admin`,
      deactivated: sql`users.deactivated`,
      displayname: sql`COALESCE(users.displayname, '')`,
      avatar_url: sql`COALESCE(users.avatar_url, '')`,
      creation_ts: sql`users.created_ts`,
      last_seen_ts: sql`COALESCE(${lastSeen}, 0)`,
    }[query.orderBy];
    const rows = await this.db
      .selectFrom('users')
      .select(['user_id', 'is_guest', 'admin', 'deactivated', 'erased', 'displayname', 'avatar_url', 'created_ts'])
      .select(lastSeen.as('last_seen_ts'))
      .where(where)
      // The second order is always the user ID, ascending, so that pages are stable (as Synapse does).
      .orderBy(sql`${orderColumn} ${direction}`)
      .orderBy('user_id', 'asc')
      .limit(query.limit)
      .offset(query.from)
      .execute();
    return {
      rows: rows.map((r) => ({ ...r, created_ts: Number(r.created_ts), last_seen_ts: r.last_seen_ts === null ? null : Number(r.last_seen_ts) })),
      total: Number(counted.n),
    };
  }
}
