import { dirname, join } from 'node:path';
import type { Config } from '../../config/index.js';

export { MediaService, isMediaId } from './media.js';
export { FileStore } from './file-store.js';
export { UrlPreviewService } from './url-preview.js';

/**
 * Where media files live: media_store_path, else `media_store` beside the SQLite database (the
 * server's data directory), else ./data/media_store (PostgreSQL, or an in-memory SQLite database).
 * Processes sharing one PostgreSQL database must share this directory too.
 */
export function mediaStorePath(config: Config): string {
  if (config.media_store_path) return config.media_store_path;
  if ((config.database.name === 'sqlite3' || config.database.name === 'sqlite') && config.database.args.database !== ':memory:') {
    return join(dirname(config.database.args.database), 'media_store');
  }
  return join('data', 'media_store');
}
