import type { Store } from '../../storage/index.js';
import type { PushRuleOverrideRow, PushRuleRow } from '../../storage/push-rules.js';
import { CompiledRuleset } from '../push-rules/evaluator.js';
import { buildRuleset } from '../push-rules/push-rules.js';

const MAX_USERS = 50_000;

/**
 * Users' compiled rulesets, kept between events. A change of someone's rules (in any process) is
 * an m.push_rules account data write at a stream position; `refresh` (run by the PushProcessor after
 * every room write and every few seconds) drops the users whose rules changed since the last look, so
 * no change is missed and nothing is polled per user. This process's own changes are dropped at once
 * (`forget`); another process's are seen within one refresh.
 */
export class PushRuleCache {
  private readonly compiled = new Map<string, CompiledRuleset>();
  private seen: number | undefined;

  constructor(private readonly store: Store) {}

  /** Forgets the rulesets of users whose rules changed up to `head`. */
  async refresh(head: number): Promise<void> {
    if (this.seen === undefined) {
      // Nothing is cached yet: whatever is loaded from now on is current.
      this.seen = head;
      this.compiled.clear();
      return;
    }
    if (head <= this.seen) return;
    for (const userId of await this.store.push.pushRuleChanges(this.seen, head)) this.compiled.delete(userId);
    this.seen = head;
  }

  /** Forgets a user's ruleset (their rules changed in this process). */
  forget(userId: string): void {
    this.compiled.delete(userId);
  }

  /** The users' rulesets; those not kept are read through `store` (a transaction's, when in one). */
  async rulesets(userIds: readonly string[], store: Store = this.store): Promise<Map<string, CompiledRuleset>> {
    const found = new Map<string, CompiledRuleset>();
    const missing: string[] = [];
    for (const userId of userIds) {
      const ruleset = this.compiled.get(userId);
      if (ruleset) found.set(userId, ruleset);
      else missing.push(userId);
    }
    if (missing.length === 0) return found;
    const { rules, overrides } = await store.pushRules.listForUsers(missing);
    const rulesOf = groupBy(rules);
    const overridesOf = groupBy(overrides);
    if (this.compiled.size + missing.length > MAX_USERS) this.compiled.clear();
    for (const userId of missing) {
      const ruleset = new CompiledRuleset(buildRuleset(userId, rulesOf.get(userId) ?? [], overridesOf.get(userId) ?? []));
      this.compiled.set(userId, ruleset);
      found.set(userId, ruleset);
    }
    return found;
  }
}

function groupBy<T extends PushRuleRow | PushRuleOverrideRow>(rows: readonly T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const row of rows) {
    const group = groups.get(row.user_id);
    if (group) group.push(row);
    else groups.set(row.user_id, [row]);
  }
  return groups;
}
