import type { Config } from '../../config/index.js';
import { compileGlob, type GlobMatcher } from '../glob.js';

/** Synapse's globs (matrix-common's glob_to_regex) ignore case by default. */
const GLOB = { ignoreCase: true } as const;

interface CompiledRule {
  allow: boolean;
  user: GlobMatcher;
  room: GlobMatcher;
  /** Undefined when the rule's alias glob is `*`: it then matches rooms without any alias too. */
  alias: GlobMatcher | undefined;
}

/**
 * Synapse's room_list_publication_rules: the first rule matching the publisher, the room and one of
 * its local aliases (or canonical alias) decides; none matching refuses. Without the key, everyone
 * may publish (Synapse's default, a single `allow` rule).
 */
export class PublicationRules {
  private readonly rules: CompiledRule[];

  constructor(config: Pick<Config, 'room_list_publication_rules'>) {
    this.rules = (config.room_list_publication_rules ?? [{ user_id: '*', room_id: '*', alias: '*', action: 'allow' }]).map((rule) => ({
      allow: rule.action === 'allow',
      user: compileGlob(rule.user_id, GLOB),
      room: compileGlob(rule.room_id, GLOB),
      alias: rule.alias === '*' ? undefined : compileGlob(rule.alias, GLOB),
    }));
  }

  allows(userId: string, roomId: string, aliases: readonly string[]): boolean {
    for (const rule of this.rules) {
      if (!rule.user(userId) || !rule.room(roomId)) continue;
      if (rule.alias && !aliases.some((alias) => rule.alias!(alias))) continue;
      return rule.allow;
    }
    return false;
  }
}
