import { sql, type Kysely, type Selectable } from 'kysely';
import type { Database } from './schema.js';

/** A local media ID (migration 0014). Times are milliseconds since the epoch. */
export interface LocalMediaTable {
  media_id: string;
  user_id: string;
  created_ts: number;
  /** Null until the content is uploaded. */
  media_type: string | null;
  upload_name: string | null;
  media_length: number | null;
  uploaded_ts: number | null;
  /** When a created ID still without content is given up; null once uploaded. */
  unused_expires_ts: number | null;
  quarantined_by: string | null;
  /** A medium fetched for a URL preview: the URL it was fetched for; null for anything else. */
  url_cache: string | null;
}

/** One thumbnail made of a local medium, kept on disk. */
export interface LocalMediaThumbnailsTable {
  media_id: string;
  width: number;
  height: number;
  method: string;
  media_type: string;
  media_length: number;
}

export interface MediaTables {
  local_media: LocalMediaTable;
  local_media_thumbnails: LocalMediaThumbnailsTable;
}

export type LocalMediaRow = Selectable<LocalMediaTable>;
export type ThumbnailRow = Selectable<LocalMediaThumbnailsTable>;

/** The content repository's metadata: local media IDs and their thumbnails. */
export class MediaRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(row: LocalMediaRow): Promise<void> {
    await this.db.insertInto('local_media').values(row).execute();
  }

  get(mediaId: string): Promise<LocalMediaRow | undefined> {
    return this.db.selectFrom('local_media').selectAll().where('media_id', '=', mediaId).executeTakeFirst();
  }

  /**
   * Records the content of a created ID, only if it has none yet and is not expired: of two
   * concurrent uploads to one ID, one wins. False when it was not (or no longer) waiting.
   */
  async completeCreated(mediaId: string, userId: string, content: { media_type: string; upload_name: string | null; media_length: number; uploaded_ts: number }): Promise<boolean> {
    const result = await this.db
      .updateTable('local_media')
      .set({ ...content, unused_expires_ts: null })
      .where('media_id', '=', mediaId)
      .where('user_id', '=', userId)
      .where('uploaded_ts', 'is', null)
      .where('unused_expires_ts', '>', content.uploaded_ts)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /** Created IDs of a user still waiting for content at `now`. */
  async pendingCount(userId: string, now: number): Promise<number> {
    const row = await this.db
      .selectFrom('local_media')
      .select(sql<number>`count(*)`.as('n'))
      .where('user_id', '=', userId)
      .where('uploaded_ts', 'is', null)
      .where('unused_expires_ts', '>', now)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Bytes a user uploaded since `since`. */
  async uploadedBytesSince(userId: string, since: number): Promise<number> {
    const row = await this.db
      .selectFrom('local_media')
      .select(sql<number>`coalesce(sum(media_length), 0)`.as('n'))
      .where('user_id', '=', userId)
      .where('uploaded_ts', '>', since)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Sets (or, with null, lifts) the quarantine. */
  async quarantine(mediaId: string, adminId: string | null): Promise<boolean> {
    const result = await this.db.updateTable('local_media').set({ quarantined_by: adminId }).where('media_id', '=', mediaId).executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /** Deletes the medium and its thumbnails' rows; false when there was none. */
  async delete(mediaId: string): Promise<boolean> {
    await this.db.deleteFrom('local_media_thumbnails').where('media_id', '=', mediaId).execute();
    const result = await this.db.deleteFrom('local_media').where('media_id', '=', mediaId).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  /** Created IDs that expired without content, at most `limit` of them. */
  expiredUnused(now: number, limit: number): Promise<{ media_id: string }[]> {
    return this.db.selectFrom('local_media').select('media_id').where('uploaded_ts', 'is', null).where('unused_expires_ts', '<=', now).limit(limit).execute();
  }

  /** Media fetched for URL previews before `before`, at most `limit` of them. */
  urlCacheBefore(before: number, limit: number): Promise<{ media_id: string }[]> {
    return this.db.selectFrom('local_media').select('media_id').where('url_cache', 'is not', null).where('created_ts', '<', before).limit(limit).execute();
  }

  thumbnails(mediaId: string): Promise<ThumbnailRow[]> {
    return this.db.selectFrom('local_media_thumbnails').selectAll().where('media_id', '=', mediaId).execute();
  }

  /** Records a thumbnail; one made concurrently by another request is kept. */
  async addThumbnail(row: ThumbnailRow): Promise<void> {
    await this.db
      .insertInto('local_media_thumbnails')
      .values(row)
      .onConflict((oc) => oc.columns(['media_id', 'width', 'height', 'method', 'media_type']).doNothing())
      .execute();
  }
}
