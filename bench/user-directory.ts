/**
 * User directory search benchmark: `npx tsx bench/user-directory.ts [--users 10000] [--iterations 40]
 * [--database sqlite|postgres|both] [--no-save]`.
 *
 * Measures the query behind POST /user_directory/search (DirectoryRepo.searchUsers, over the
 * user_directory_words index) side by side with a baseline that finds the same users without the
 * index: LIKE prefix patterns on the user ID and the display name's words, i.e. a scan of users.
 * Both apply the same visibility rule (a shared joined room with the searcher, or a public room).
 *
 * Seeding, untimed, on a fresh database per engine: `--users` accounts through UsersRepo.create (which
 * writes their words), display names from 60 first names x 200 surnames; rooms and memberships
 * written as rows (room_directory included), not as events: one public room with 30% of the users,
 * 200 private rooms of 20 members, the searcher in 10 of them. Each term is then searched
 * `--iterations` times per variant, alternating, and the median is reported, with the load averages.
 * Run in-process (no HTTP): the figure is the database's cost of one search.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { parseConfig } from '../src/config/load.js';
import { openDb } from '../src/storage/db.js';
import { directoryWords } from '../src/storage/directory.js';
import { Store } from '../src/storage/index.js';
import { freshDatabase, type Engine } from '../test/helpers/server.js';
import { commitOf, load } from './conditions.js';
import { median } from './report.js';

const { values: args } = parseArgs({
  options: {
    users: { type: 'string', default: '10000' },
    iterations: { type: 'string', default: '40' },
    database: { type: 'string', default: 'both' },
    'no-save': { type: 'boolean', default: false },
    explain: { type: 'boolean', default: false },
  },
});
const USERS = Number(args.users);
const ITERATIONS = Number(args.iterations);
const ENGINES: Engine[] = args.database === 'both' ? ['sqlite', 'postgres'] : [args.database as Engine];
const TERMS = ['a', 'jo', 'smith', 'anna sm', 'user1234', '@user77', 'zzz'];

const FIRST = 'anna ben carla david emma felix gina hugo iris jonas karl lena max nora otto paula quinn rosa sven tina ulla vera walt xena yann zoe adam bea chris dora eli fred greta hans ida jan kim lars mia nils olga per rita sara tom una vito wim yara zack aaron bianca conrad diana erik fiona georg hanna ivan julia'.split(' ');
const SURNAMES = Array.from({ length: 200 }, (_, i) => ['smith', 'jones', 'miller', 'brown', 'davis', 'wilson', 'moore', 'taylor', 'anderson', 'thomas'][i % 10]! + (i < 10 ? '' : String.fromCharCode(97 + (i % 26)) + Math.floor(i / 26)));

async function seed(store: Store): Promise<{ searcher: string }> {
  const now = Date.now();
  const userIds: string[] = [];
  for (let start = 0; start < USERS; start += 500) {
    await store.transaction(async (tx) => {
      for (let i = start; i < Math.min(USERS, start + 500); i++) {
        const userId = `@user${i}:bench.local`;
        userIds.push(userId);
        const name = `${FIRST[i % FIRST.length]!} ${SURNAMES[Math.floor(i / FIRST.length) % SURNAMES.length]!}`;
        await tx.users.create({ user_id: userId, password_hash: null, created_ts: now, is_guest: false, displayname: name.replace(/^./, (c) => c.toUpperCase()) });
      }
    });
  }
  const db = store.db.kysely;
  const room = async (roomId: string, joinRule: string, members: string[]) => {
    await db.insertInto('rooms').values({ room_id: roomId, room_version: '11', creator: members[0]!, created_ts: now, is_public: 0, state_group: 0, depth: 0, last_pos: 0 }).execute();
    await db
      .insertInto('room_directory')
      .values({ room_id: roomId, join_rule: joinRule, history_visibility: 'shared', joined_members: members.length, name: null, topic: null, canonical_alias: null, avatar_url: null, guest_access: null, room_type: null, name_lc: null, topic_lc: null, alias_lc: null })
      .execute();
    for (let i = 0; i < members.length; i += 300) {
      await db
        .insertInto('room_members')
        .values(members.slice(i, i + 300).map((userId, n) => ({ room_id: roomId, user_id: userId, membership: 'join', event_id: `$${roomId}-${i + n}`, stream_pos: 0, sender: userId, displayname: null, avatar_url: null, forgotten: 0 })))
        .execute();
    }
  };
  await room('!public:bench.local', 'public', userIds.filter((_, i) => i % 10 < 3));
  const searcher = userIds[1]!;
  for (let r = 0; r < 200; r++) {
    const members = Array.from({ length: 20 }, (_, k) => userIds[(r * 37 + k * 101) % USERS]!).filter((u) => u !== searcher);
    if (r < 10) members.push(searcher);
    await room(`!private${r}:bench.local`, 'invite', [...new Set(members)]);
  }
  return { searcher };
}

/** The same search without the words index: LIKE prefix patterns on the user ID and each display name word. */
async function baseline(store: Store, searcher: string, term: string, limit: number): Promise<unknown[]> {
  const words = directoryWords(term);
  const escape = (w: string) => w.replace(/[\\%_]/g, (c) => `\\${c}`);
  const matches = words.map(
    (w) =>
      sql`(lower(u.user_id) LIKE ${`@${escape(w)}%`} ESCAPE '\\' OR lower(u.displayname) LIKE ${`${escape(w)}%`} ESCAPE '\\' OR lower(u.displayname) LIKE ${`% ${escape(w)}%`} ESCAPE '\\')`,
  );
  const { rows } = await sql`
    SELECT u.user_id, u.displayname, u.avatar_url FROM users u
    WHERE u.deactivated = 0 AND ${sql.join(matches, sql` AND `)}
      AND (EXISTS (SELECT 1 FROM room_members m JOIN room_directory d ON d.room_id = m.room_id
                   WHERE m.user_id = u.user_id AND m.membership = 'join' AND (d.join_rule = 'public' OR d.history_visibility = 'world_readable'))
           OR u.user_id IN (SELECT theirs.user_id FROM room_members mine JOIN room_members theirs ON theirs.room_id = mine.room_id
                   WHERE mine.user_id = ${searcher} AND mine.membership = 'join' AND theirs.membership = 'join' AND theirs.user_id <> ${searcher}))
    ORDER BY CASE WHEN u.displayname IS NULL THEN 1 ELSE 0 END, lower(u.displayname), u.user_id
    LIMIT ${limit + 1}`.execute(store.db.kysely);
  return rows;
}

async function timed(fn: () => Promise<unknown[]>): Promise<{ ms: number; rows: number }> {
  const start = process.hrtime.bigint();
  const rows = await fn();
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, rows: rows.length };
}

async function runEngine(engine: Engine) {
  const fresh = await freshDatabase(engine);
  const config = parseConfig({ server_name: 'bench.local', database: fresh.database }).config;
  const db = await openDb(config.database);
  const store = new Store(db);
  try {
    const seedStart = Date.now();
    const { searcher } = await seed(store);
    const seedSeconds = (Date.now() - seedStart) / 1000;
    if (engine === 'postgres') await sql`ANALYZE`.execute(db.kysely);
    if (args.explain) {
      const compiled = store.directory.searchUsersQuery({ searcher, words: ['a'], allUsers: false, limit: 10 }).compile();
      const prefix = engine === 'sqlite' ? 'EXPLAIN QUERY PLAN ' : 'EXPLAIN ANALYZE ';
      const plan = await db.kysely.executeQuery({ ...compiled, sql: prefix + compiled.sql });
      console.log(compiled.sql);
      console.log(plan.rows.map((r) => Object.values(r as object).join(' ')).join('\n'));
    }
    const rows = [];
    for (const term of TERMS) {
      const indexed: number[] = [];
      const scanned: number[] = [];
      let found = { indexed: 0, scanned: 0 };
      for (let i = 0; i < ITERATIONS + 2; i++) {
        const a = await timed(() => store.directory.searchUsers({ searcher, words: directoryWords(term), allUsers: false, limit: 10 }));
        const b = await timed(() => baseline(store, searcher, term, 10));
        if (i >= 2) {
          indexed.push(a.ms);
          scanned.push(b.ms);
        }
        found = { indexed: a.rows, scanned: b.rows };
      }
      if (found.indexed !== found.scanned) throw new Error(`${engine} '${term}': the variants disagree (${found.indexed} vs ${found.scanned} rows)`);
      const row = { term, rows: found.indexed, indexed_ms: round(median(indexed)), baseline_ms: round(median(scanned)), ratio: round(median(scanned) / median(indexed)) };
      rows.push(row);
      console.log(`${engine.padEnd(8)} ${JSON.stringify(term).padEnd(11)} rows ${String(row.rows).padStart(2)}  words index ${String(row.indexed_ms).padStart(7)} ms  baseline scan ${String(row.baseline_ms).padStart(7)} ms  (x${row.ratio})`);
    }
    return { engine, seed_seconds: seedSeconds, terms: rows };
  } finally {
    await db.close();
    await fresh.drop();
  }
}

function round(x: number): number {
  return Number(x.toFixed(3));
}

const before = load();
const results = [];
for (const engine of ENGINES) results.push(await runEngine(engine));
const report = { bench: 'user-directory', users: USERS, iterations: ITERATIONS, commit: commitOf(resolve('.')), cpus: cpus().length, load_before: before, load_after: load(), results };
console.log(`load averages before ${before.join(' ')}, after ${report.load_after.join(' ')}`);
if (!args['no-save']) {
  const dir = resolve('bench/results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `user-directory-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`saved ${file}`);
}
