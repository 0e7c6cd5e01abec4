import type { Config } from '../../config/index.js';
import { directoryWords } from '../../storage/directory.js';
import type { Store } from '../../storage/index.js';

export interface UserDirectoryResult {
  user_id: string;
  display_name?: string;
  avatar_url?: string;
}

/** Synapse's cap on one search's results. */
const MAX_LIMIT = 50;

/**
 * POST /user_directory/search: local users by the words of their user ID and display name, each
 * word of the term a case-insensitive prefix of one of them. Who is visible follows Synapse:
 * users sharing a joined room with the searcher or joined to a publicly joinable or world-readable
 * room (`user_directory.search_all_users`: every user); deactivated users never.
 */
export class UserDirectoryService {
  constructor(
    private readonly store: Store,
    private readonly config: Config,
  ) {}

  async search(searcher: string, term: string, limit = 10): Promise<{ results: UserDirectoryResult[]; limited: boolean }> {
    const { enabled, search_all_users: allUsers } = this.config.user_directory;
    const words = directoryWords(term).slice(0, 16);
    if (!enabled || words.length === 0) return { results: [], limited: false };
    const capped = Math.max(0, Math.min(limit, MAX_LIMIT));
    const rows = await this.store.directory.searchUsers({ searcher, words, allUsers, limit: capped });
    return {
      results: rows.slice(0, capped).map((row) => {
        const result: UserDirectoryResult = { user_id: row.user_id };
        if (row.displayname !== null) result.display_name = row.displayname;
        if (row.avatar_url !== null && row.avatar_url.startsWith('mxc://')) result.avatar_url = row.avatar_url;
        return result;
      }),
      limited: rows.length > capped,
    };
  }
}
