import type { Kysely, Selectable } from 'kysely';
import type { PushRuleOverridesTable, PushRulesTable } from './client-state-schema.js';
import type { Database } from './schema.js';

export type PushRuleRow = Selectable<PushRulesTable>;
export type PushRuleOverrideRow = Selectable<PushRuleOverridesTable>;

export class PushRulesRepo {
  constructor(private readonly db: Kysely<Database>) {}

  list(userId: string): Promise<PushRuleRow[]> {
    return this.db.selectFrom('push_rules').selectAll().where('user_id', '=', userId).orderBy('kind').orderBy('priority').execute();
  }

  listOverrides(userId: string): Promise<PushRuleOverrideRow[]> {
    return this.db.selectFrom('push_rule_overrides').selectAll().where('user_id', '=', userId).execute();
  }

  /** Every user-defined rule and default-rule change of these users, for evaluating their rules in bulk. */
  async listForUsers(userIds: readonly string[]): Promise<{ rules: PushRuleRow[]; overrides: PushRuleOverrideRow[] }> {
    const rules: PushRuleRow[] = [];
    const overrides: PushRuleOverrideRow[] = [];
    for (let i = 0; i < userIds.length; i += 500) {
      const chunk = userIds.slice(i, i + 500);
      rules.push(...(await this.db.selectFrom('push_rules').selectAll().where('user_id', 'in', chunk).orderBy('user_id').orderBy('kind').orderBy('priority').execute()));
      overrides.push(...(await this.db.selectFrom('push_rule_overrides').selectAll().where('user_id', 'in', chunk).execute()));
    }
    return { rules, overrides };
  }

  /** Replaces every user-defined rule of one kind, in the given order. */
  async replaceKind(userId: string, kind: string, rules: readonly Omit<PushRuleRow, 'user_id' | 'kind' | 'priority'>[]): Promise<void> {
    await this.db.deleteFrom('push_rules').where('user_id', '=', userId).where('kind', '=', kind).execute();
    if (rules.length === 0) return;
    await this.db
      .insertInto('push_rules')
      .values(rules.map((r, priority) => ({ ...r, user_id: userId, kind, priority })))
      .execute();
  }

  async setOverride(userId: string, kind: string, ruleId: string, change: { enabled?: number; actions?: string }): Promise<void> {
    await this.db
      .insertInto('push_rule_overrides')
      .values({ user_id: userId, kind, rule_id: ruleId, enabled: change.enabled ?? null, actions: change.actions ?? null })
      .onConflict((oc) => oc.columns(['user_id', 'kind', 'rule_id']).doUpdateSet(change))
      .execute();
  }
}
