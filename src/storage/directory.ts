import { sql, type Expression, type Kysely, type Selectable, type SqlBool } from 'kysely';
import type { RoomDirectoryTable } from './directory-schema.js';
import type { Database } from './schema.js';

export type RoomDirectoryRow = Omit<Selectable<RoomDirectoryTable>, 'name_lc' | 'topic_lc' | 'alias_lc'>;

/** The room directory column each state event sets, from its content (null when the content has none). */
const STATE_COLUMNS: Record<string, { column: keyof RoomDirectoryTable; field: string; search?: 'name_lc' | 'topic_lc' | 'alias_lc' }> = {
  'm.room.name': { column: 'name', field: 'name', search: 'name_lc' },
  'm.room.topic': { column: 'topic', field: 'topic', search: 'topic_lc' },
  'm.room.canonical_alias': { column: 'canonical_alias', field: 'alias', search: 'alias_lc' },
  'm.room.avatar': { column: 'avatar_url', field: 'url' },
  'm.room.join_rules': { column: 'join_rule', field: 'join_rule' },
  'm.room.history_visibility': { column: 'history_visibility', field: 'history_visibility' },
  'm.room.guest_access': { column: 'guest_access', field: 'guest_access' },
};

/** Join rules under which a published room is listed (Synapse lists these, and world-readable rooms). */
export const LISTED_JOIN_RULES = ['public', 'knock', 'knock_restricted'] as const;

/**
 * The words a user is found by: the localpart's and the display name's runs of letters and digits,
 * lower-cased. A search term is split the same way, and each of its words must begin one of these.
 */
export function directoryWords(text: string): string[] {
  return text.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((w) => w.length > 0);
}

/**
 * The words of the whole user ID (localpart and server name, as Synapse indexes it, so that a typed
 * user ID finds its user) and of the display name.
 */
export function userDirectoryWords(userId: string, displayname: string | null): string[] {
  // Capped: the table should not grow with a pathological display name.
  return [...new Set([...directoryWords(userId), ...directoryWords(displayname ?? '')])].map((w) => w.slice(0, 100)).slice(0, 64);
}

/** The upper bound of a prefix range: every string that starts with `prefix` sorts below it (code point order). */
function prefixEnd(prefix: string): string {
  return `${prefix}\u{10FFFF}`;
}

export interface PublicRoomsQuery {
  /** Matched case-insensitively anywhere in the name, topic or canonical alias. */
  searchTerm?: string | undefined;
  /** Room types to list; null stands for rooms without a type. */
  roomTypes?: readonly (string | null)[] | undefined;
  limit?: number | undefined;
  /** Where the previous page ended (forwards) or began (backwards). */
  bound?: { joined: number; roomId: string } | undefined;
  forwards: boolean;
}

export interface UserSearchQuery {
  searcher: string;
  words: readonly string[];
  /** All local users, not only those sharing a room with the searcher or in public rooms. */
  allUsers: boolean;
  limit: number;
}

/** The published room directory and the user directory. */
export class DirectoryRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * The room write path calls this for every state event it stores (one call, nothing read):
   * m.room.create makes the room's row, the listed state types set their column, and a member event
   * whose membership enters or leaves `join` moves the joined count. Other events cost no query.
   */
  async onStateEvent(roomId: string, type: string, stateKey: string, content: Record<string, unknown>, previousMembership: string | undefined): Promise<void> {
    if (type === 'm.room.member') {
      const delta = (content.membership === 'join' ? 1 : 0) - (previousMembership === 'join' ? 1 : 0);
      if (delta !== 0) await this.db.updateTable('room_directory').set({ joined_members: sql`joined_members + ${delta}` }).where('room_id', '=', roomId).execute();
      return;
    }
    if (stateKey !== '') return;
    if (type === 'm.room.create') {
      const roomType = typeof content.type === 'string' ? content.type : null;
      await this.db
        .insertInto('room_directory')
        .values({ ...emptyRoomDirectoryRow(roomId), room_type: roomType })
        .onConflict((oc) => oc.column('room_id').doUpdateSet({ room_type: roomType }))
        .execute();
      return;
    }
    const values = directoryValuesOf(type, content);
    if (values) await this.db.updateTable('room_directory').set(values).where('room_id', '=', roomId).execute();
  }

  /** Published rooms in directory order (most joined members first, then room ID, both descending, as Synapse). */
  async publicRooms(query: PublicRoomsQuery): Promise<RoomDirectoryRow[]> {
    const dir = query.forwards ? 'desc' : 'asc';
    let select = this.listed()
      .select(['d.room_id', 'd.name', 'd.topic', 'd.canonical_alias', 'd.avatar_url', 'd.join_rule', 'd.history_visibility', 'd.guest_access', 'd.room_type', 'd.joined_members'])
      .where(this.filter(query));
    if (query.bound) {
      const { joined, roomId } = query.bound;
      select = query.forwards
        ? select.where((eb) => eb.and([eb('d.joined_members', '<=', joined), eb.or([eb('d.joined_members', '<', joined), eb('d.room_id', '<', roomId)])]))
        : select.where((eb) => eb.and([eb('d.joined_members', '>=', joined), eb.or([eb('d.joined_members', '>', joined), eb('d.room_id', '>', roomId)])]));
    }
    select = select.orderBy('d.joined_members', dir).orderBy('d.room_id', dir);
    if (query.limit !== undefined) select = select.limit(query.limit);
    const rows = (await select.execute()).map((r) => ({ ...r, joined_members: Number(r.joined_members) }));
    return query.forwards ? rows : rows.reverse();
  }

  async countPublicRooms(query: Pick<PublicRoomsQuery, 'searchTerm' | 'roomTypes'>): Promise<number> {
    const row = await this.listed()
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where(this.filter(query))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Published rooms anyone may find: joinable by anyone (or by knocking) or world-readable, and not empty. */
  private listed() {
    return this.db
      .selectFrom('rooms as r')
      .innerJoin('room_directory as d', 'd.room_id', 'r.room_id')
      .where('r.is_public', '=', 1)
      .where('d.joined_members', '>', 0)
      .where((eb) => eb.or([eb('d.join_rule', 'in', LISTED_JOIN_RULES), eb('d.history_visibility', '=', 'world_readable')]));
  }

  private filter(query: Pick<PublicRoomsQuery, 'searchTerm' | 'roomTypes'>): Expression<SqlBool> {
    const clauses: Expression<SqlBool>[] = [];
    if (query.searchTerm) {
      const pattern = `%${query.searchTerm.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      clauses.push(sql<SqlBool>`(d.name_lc LIKE ${pattern} ESCAPE '\\' OR d.topic_lc LIKE ${pattern} ESCAPE '\\' OR d.alias_lc LIKE ${pattern} ESCAPE '\\')`);
    }
    if (query.roomTypes) {
      const types = query.roomTypes.filter((t): t is string => t !== null);
      const alternatives: Expression<SqlBool>[] = [];
      if (types.length > 0) alternatives.push(sql<SqlBool>`d.room_type IN (${sql.join(types)})`);
      if (query.roomTypes.includes(null)) alternatives.push(sql<SqlBool>`d.room_type IS NULL`);
      clauses.push(alternatives.length > 0 ? sql<SqlBool>`(${sql.join(alternatives, sql` OR `)})` : sql<SqlBool>`1 = 0`);
    }
    return clauses.length > 0 ? sql<SqlBool>`(${sql.join(clauses, sql` AND `)})` : sql<SqlBool>`1 = 1`;
  }

  /** Replaces the words a user is found by (none for a deactivated account). */
  async setUserWords(userId: string, words: readonly string[]): Promise<void> {
    await this.db.deleteFrom('user_directory_words').where('user_id', '=', userId).execute();
    if (words.length === 0) return;
    // Two writes of one user's name at once may both insert: the second's words are then simply there already.
    await this.db
      .insertInto('user_directory_words')
      .values(words.map((word) => ({ word, user_id: userId })))
      .onConflict((oc) => oc.columns(['word', 'user_id']).doNothing())
      .execute();
  }

  /**
   * Active local users each of whose words begins one of the user's words (prefix ranges on the
   * words index), visible to the searcher: as in Synapse, users who share a joined room with the
   * searcher or are joined to a public (publicly joinable or world-readable) room, or with
   * `allUsers` every user but the searcher. `limit + 1` rows at most, so the caller can tell `limited`.
   */
  async searchUsers(query: UserSearchQuery): Promise<{ user_id: string; displayname: string | null; avatar_url: string | null }[]> {
    if (query.words.length === 0) return [];
    return this.searchUsersQuery(query).execute();
  }

  /** The query of searchUsers (for a benchmark's EXPLAIN). */
  searchUsersQuery(query: UserSearchQuery) {
    // The users one of whose words each word of the term begins, from the index. Materialised, so
    // that they drive the query: PostgreSQL otherwise checked every user's visibility first.
    const byWord = (word: string) =>
      this.db.selectFrom('user_directory_words as w').select('w.user_id').where('w.word', '>=', word).where('w.word', '<', prefixEnd(word));
    const [first, ...rest] = query.words;
    let candidates = byWord(first!).distinct();
    for (const word of rest) candidates = candidates.intersect(byWord(word));
    let select = this.db
      .with(
        (cte) => cte('matched').materialized(),
        (db) =>
          db
            .selectFrom(candidates.as('c'))
            .innerJoin('users as u', 'u.user_id', 'c.user_id')
            .select(['u.user_id', 'u.displayname', 'u.avatar_url'])
            .where('u.deactivated', '=', 0),
      )
      .selectFrom('matched as u')
      .select(['u.user_id', 'u.displayname', 'u.avatar_url']);
    if (query.allUsers) {
      select = select.where('u.user_id', '<>', query.searcher);
    } else {
      select = select.where((eb) =>
        eb.or([
          eb.exists(
            eb
              .selectFrom('room_members as m')
              .innerJoin('room_directory as d', 'd.room_id', 'm.room_id')
              .select(sql`1`.as('one'))
              .whereRef('m.user_id', '=', 'u.user_id')
              .where('m.membership', '=', 'join')
              .where((inner) => inner.or([inner('d.join_rule', '=', 'public'), inner('d.history_visibility', '=', 'world_readable')])),
          ),
          // The searcher's room-mates, listed once per search rather than looked for per candidate.
          eb('u.user_id', 'in', (inner) =>
            inner
              .selectFrom('room_members as mine')
              .innerJoin('room_members as theirs', 'theirs.room_id', 'mine.room_id')
              .select('theirs.user_id')
              .where('mine.user_id', '=', query.searcher)
              .where('mine.membership', '=', 'join')
              .where('theirs.membership', '=', 'join')
              .where('theirs.user_id', '<>', query.searcher),
          ),
        ]),
      );
    }
    // Users with a display name first, then by it (case-insensitively), then by user ID.
    return select
      .orderBy(sql`CASE WHEN u.displayname IS NULL THEN 1 ELSE 0 END`)
      .orderBy(sql`lower(u.displayname)`)
      .orderBy('u.user_id')
      .limit(query.limit + 1);
  }
}

export function emptyRoomDirectoryRow(roomId: string) {
  return {
    room_id: roomId,
    name: null,
    topic: null,
    canonical_alias: null,
    avatar_url: null,
    join_rule: null,
    history_visibility: null,
    guest_access: null,
    room_type: null,
    joined_members: 0,
    name_lc: null,
    topic_lc: null,
    alias_lc: null,
  };
}

/** The row values one state event sets (for the migration's fill of existing rooms). */
export function directoryValuesOf(type: string, content: Record<string, unknown>): Record<string, string | null> | undefined {
  if (type === 'm.room.create') return { room_type: typeof content.type === 'string' ? content.type : null };
  const target = STATE_COLUMNS[type];
  if (!target) return undefined;
  const raw = content[target.field];
  const value = typeof raw === 'string' ? raw : null;
  return { [target.column]: value, ...(target.search ? { [target.search]: value?.toLowerCase() ?? null } : {}) };
}
