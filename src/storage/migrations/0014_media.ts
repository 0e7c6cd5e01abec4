import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * The content repository: one row per local media ID (Synapse's local_media_repository), created
 * by an upload or by POST /media/v1/create (then without content until its PUT), and one row per
 * thumbnail made of it. The bytes live on disk under media_store_path.
 */
export async function up(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('local_media')
    .addColumn('media_id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    // Null until the content is there (a created ID waiting for its PUT).
    .addColumn('media_type', 'text')
    .addColumn('upload_name', 'text')
    .addColumn('media_length', 'bigint')
    .addColumn('uploaded_ts', 'bigint')
    // When a created ID without content is given up (null once uploaded).
    .addColumn('unused_expires_ts', 'bigint')
    // The admin who quarantined it: then it is served to no one.
    .addColumn('quarantined_by', 'text')
    .execute();
  await db.schema.createIndex('local_media_user_created').on('local_media').columns(['user_id', 'created_ts']).execute();

  await db.schema
    .createTable('local_media_thumbnails')
    .addColumn('media_id', 'text', (c) => c.notNull())
    .addColumn('width', 'integer', (c) => c.notNull())
    .addColumn('height', 'integer', (c) => c.notNull())
    .addColumn('method', 'text', (c) => c.notNull())
    .addColumn('media_type', 'text', (c) => c.notNull())
    .addColumn('media_length', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('local_media_thumbnails_pkey', ['media_id', 'width', 'height', 'method', 'media_type'])
    .execute();
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.dropTable('local_media_thumbnails').execute();
  await db.schema.dropTable('local_media').execute();
}
