import { sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * Media fetched for URL previews carry the URL they were fetched for (Synapse's `url_cache`), so
 * that they can be deleted after a while as Synapse does; the index serves that sweep.
 */
export async function up(db: AnyDb): Promise<void> {
  await db.schema.alterTable('local_media').addColumn('url_cache', 'text').execute();
  await db.schema.createIndex('local_media_url_cache_created').on('local_media').column('created_ts').where(sql.ref('url_cache'), 'is not', null).execute();
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.dropIndex('local_media_url_cache_created').execute();
  await db.schema.alterTable('local_media').dropColumn('url_cache').execute();
}
