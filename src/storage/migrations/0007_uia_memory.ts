import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * A UIA session remembers the request it authorises (its parameters, and a hashed password until
 * the session completes), and once completed, when and with what result, so that a client
 * retrying the completing request gets that result instead of a second execution.
 */
export async function up(db: AnyDb): Promise<void> {
  await db.schema.alterTable('uia_sessions').addColumn('params', 'text').execute();
  await db.schema.alterTable('uia_sessions').addColumn('secret_hash', 'text').execute();
  await db.schema.alterTable('uia_sessions').addColumn('completed_ts', 'bigint').execute();
  await db.schema.alterTable('uia_sessions').addColumn('result', 'text').execute();
}

export async function down(db: AnyDb): Promise<void> {
  for (const column of ['result', 'completed_ts', 'secret_hash', 'params']) {
    await db.schema.alterTable('uia_sessions').dropColumn(column).execute();
  }
}
