import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * A refreshed pair remembers the refresh token it replaced, which stays valid until the new access
 * or refresh token is first used (the spec's rule, so a client that lost the answer can retry).
 */
export async function up(db: AnyDb): Promise<void> {
  await db.schema.alterTable('refresh_tokens').addColumn('prev_token_hash', 'text').execute();
  await db.schema.alterTable('access_tokens').addColumn('prev_refresh_hash', 'text').execute();
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.alterTable('access_tokens').dropColumn('prev_refresh_hash').execute();
  await db.schema.alterTable('refresh_tokens').dropColumn('prev_token_hash').execute();
}
