import { MatrixError, invalidParam, missingParam, notFound, unrecognized } from '../../errors.js';
import type { PushRuleOverrideRow, PushRuleRow } from '../../storage/push-rules.js';
import type { Store } from '../../storage/index.js';
import { isObject, type JsonObject } from '../../validate.js';
import { DEFAULT_CONTENT, DEFAULT_OVERRIDE, DEFAULT_UNDERRIDE, MASTER_RULE, personalise, type PushKind, type PushRule } from './push-defaults.js';
import type { StreamWriter } from '../sync/stream-writer.js';

export const PUSH_KINDS: readonly PushKind[] = ['override', 'content', 'room', 'sender', 'underride'];
export type Ruleset = Record<PushKind, PushRule[]>;

/** A push rule as a client sets it (PUT /pushrules/global/{kind}/{ruleId}): checked at the edge. */
export interface PushRuleInput {
  actions: unknown[];
  conditions?: JsonObject[];
  /** Required for content rules. */
  pattern?: string;
}

/** Where a new or moved rule goes among the user's rules of its kind. */
export interface RulePosition {
  before?: string;
  after?: string;
}

function checkKind(kind: string): PushKind {
  if (!(PUSH_KINDS as readonly string[]).includes(kind)) throw new MatrixError(400, 'M_UNRECOGNIZED', `Unknown push rule kind: ${kind}`);
  return kind as PushKind;
}

/** The kind and rule ID of a rule's path; an empty rule ID is a malformed path, as a missing one is. */
export function checkRulePath(kind: string, ruleId: string): PushKind {
  if (ruleId === '') throw unrecognized(400, 'Missing push rule ID');
  return checkKind(kind);
}

function userRuleView(row: PushRuleRow): PushRule {
  const view: PushRule = { rule_id: row.rule_id, default: false, enabled: row.enabled === 1, actions: JSON.parse(row.actions) as unknown[] };
  if (row.kind === 'override' || row.kind === 'underride') view.conditions = row.conditions ? (JSON.parse(row.conditions) as JsonObject[]) : [];
  if (row.kind === 'content' && row.pattern !== null) view.pattern = row.pattern;
  return view;
}

/**
 * A user's whole ruleset in evaluation order within each kind: the master rule, their own override
 * rules, then the server-default ones; their own content and underride rules before the defaults.
 */
export function buildRuleset(userId: string, rows: readonly PushRuleRow[], overrides: readonly PushRuleOverrideRow[]): Ruleset {
  const own = (kind: PushKind) => rows.filter((r) => r.kind === kind).map(userRuleView);
  const defaults = (kind: PushKind, rules: PushRule[]) =>
    rules.map((rule) => {
      const copy = personalise(rule, userId);
      const change = overrides.find((o) => o.kind === kind && o.rule_id === rule.rule_id);
      if (change?.enabled !== null && change?.enabled !== undefined) copy.enabled = change.enabled === 1;
      if (change?.actions) copy.actions = JSON.parse(change.actions) as unknown[];
      return copy;
    });
  return {
    override: [...defaults('override', [MASTER_RULE]), ...own('override'), ...defaults('override', DEFAULT_OVERRIDE)],
    content: [...own('content'), ...defaults('content', DEFAULT_CONTENT)],
    room: own('room'),
    sender: own('sender'),
    underride: [...own('underride'), ...defaults('underride', DEFAULT_UNDERRIDE)],
  };
}

/** Push rules: the spec's server-default rules, each user's own rules, and the user's changes to defaults. */
export class PushRuleService {
  /** Told of each user whose rules this process changed, once committed. */
  readonly changed: ((userId: string) => void)[] = [];

  constructor(
    private readonly store: Store,
    private readonly writer: StreamWriter,
  ) {}

  async ruleset(userId: string): Promise<Ruleset> {
    const repo = this.store.pushRules;
    const [rows, overrides] = await Promise.all([repo.list(userId), repo.listOverrides(userId)]);
    return buildRuleset(userId, rows, overrides);
  }

  /** The content of the m.push_rules account data event. */
  async accountDataContent(userId: string): Promise<JsonObject> {
    return { global: await this.ruleset(userId) };
  }

  async rulesOfKind(userId: string, kind: string): Promise<PushRule[]> {
    return (await this.ruleset(userId))[checkKind(kind)];
  }

  async getRule(userId: string, kind: string, ruleId: string): Promise<PushRule> {
    const rule = (await this.rulesOfKind(userId, checkRulePath(kind, ruleId))).find((r) => r.rule_id === ruleId);
    if (!rule) throw notFound('The push rule was not found.');
    return rule;
  }

  async putRule(userId: string, kindParam: string, ruleId: string, input: PushRuleInput, { before, after }: RulePosition = {}): Promise<void> {
    const kind = checkRulePath(kindParam, ruleId);
    if (ruleId.startsWith('.')) throw invalidParam("Rule IDs starting with '.' are reserved for server-default rules");
    if (/[/\\]/.test(ruleId)) throw invalidParam('Rule IDs may not contain slashes or backslashes');
    // A room or sender rule's ID names the room or user it applies to; the spec does not say to refuse
    // other IDs, and Synapse takes any (such a rule matches nothing).
    const actions = input.actions;
    let pattern: string | null = null;
    let conditions: string | null = null;
    if (kind === 'content') {
      if (input.pattern === undefined) throw missingParam('pattern');
      pattern = input.pattern;
    }
    if (kind === 'override' || kind === 'underride') conditions = JSON.stringify(input.conditions ?? []);

    await this.change(userId, async (store) => {
      const rows = (await store.pushRules.list(userId)).filter((r) => r.kind === kind);
      const existing = rows.find((r) => r.rule_id === ruleId);
      const rule = { rule_id: ruleId, conditions, pattern, actions: JSON.stringify(actions), enabled: existing?.enabled ?? 1 };
      let order = rows.map((r) => ({ rule_id: r.rule_id, conditions: r.conditions, pattern: r.pattern, actions: r.actions, enabled: r.enabled }));
      const anchorId = before ?? after;
      if (anchorId !== undefined) {
        order = order.filter((r) => r.rule_id !== ruleId);
        const at = order.findIndex((r) => r.rule_id === anchorId);
        if (at < 0) throw new MatrixError(400, 'M_UNKNOWN', `before/after rule not found: ${anchorId}`);
        order.splice(before !== undefined ? at : at + 1, 0, rule);
      } else if (existing) {
        order = order.map((r) => (r.rule_id === ruleId ? rule : r));
      } else {
        order.unshift(rule);
      }
      await store.pushRules.replaceKind(userId, kind, order);
    });
  }

  async deleteRule(userId: string, kindParam: string, ruleId: string): Promise<void> {
    const kind = checkRulePath(kindParam, ruleId);
    if (ruleId.startsWith('.')) {
      await this.getRule(userId, kind, ruleId);
      throw invalidParam('Server-default rules cannot be deleted');
    }
    await this.change(userId, async (store) => {
      const rows = (await store.pushRules.list(userId)).filter((r) => r.kind === kind);
      if (!rows.some((r) => r.rule_id === ruleId)) throw notFound('The push rule was not found.');
      await store.pushRules.replaceKind(
        userId,
        kind,
        rows.filter((r) => r.rule_id !== ruleId),
      );
    });
  }

  async setEnabled(userId: string, kind: string, ruleId: string, enabled: boolean): Promise<void> {
    await this.setAttribute(userId, kind, ruleId, { enabled: enabled ? 1 : 0 });
  }

  async setActions(userId: string, kind: string, ruleId: string, actions: unknown[]): Promise<void> {
    await this.setAttribute(userId, kind, ruleId, { actions: JSON.stringify(actions) });
  }

  private async setAttribute(userId: string, kindParam: string, ruleId: string, change: { enabled?: number; actions?: string }): Promise<void> {
    const kind = checkRulePath(kindParam, ruleId);
    await this.getRule(userId, kind, ruleId);
    await this.change(userId, async (store) => {
      if (ruleId.startsWith('.')) {
        await store.pushRules.setOverride(userId, kind, ruleId, change);
        return;
      }
      const rows = (await store.pushRules.list(userId)).filter((r) => r.kind === kind);
      if (!rows.some((r) => r.rule_id === ruleId)) throw notFound('The push rule was not found.');
      await store.pushRules.replaceKind(
        userId,
        kind,
        rows.map((r) => ({ rule_id: r.rule_id, conditions: r.conditions, pattern: r.pattern, actions: r.actions, enabled: r.enabled, ...(r.rule_id === ruleId ? change : {}) })),
      );
    });
  }

  /**
   * A room upgrade: the user's enabled rules about the old room (a `room` rule keyed by its ID, an
   * override or underride rule with a `room_id` condition naming it) made again for the new room, as
   * Synapse copies them: named by the new room's ID, each `room_id` condition naming the new room,
   * ahead of the rest of their kind. A rule the new room already has is left as it is. Answers
   * whether any was copied (nothing is written, and no sync woken, when none is).
   */
  async copyRoomRules(userId: string, oldRoomId: string, newRoomId: string): Promise<boolean> {
    if (roomRuleCopies(await this.store.pushRules.list(userId), oldRoomId, newRoomId).size === 0) return false;
    let copied = false;
    await this.change(userId, async (store) => {
      // Read again under the stream position: a rule changed meanwhile is not lost.
      const rows = await store.pushRules.list(userId);
      for (const [kind, copies] of roomRuleCopies(rows, oldRoomId, newRoomId)) {
        const own = rows.filter((r) => r.kind === kind).map((r) => ({ rule_id: r.rule_id, conditions: r.conditions, pattern: r.pattern, actions: r.actions, enabled: r.enabled }));
        await store.pushRules.replaceKind(userId, kind, [...copies, ...own]);
        copied = true;
      }
    });
    return copied;
  }

  /** Applies a change and records an m.push_rules account data change, so that syncs deliver the new rules. */
  private async change(userId: string, fn: (store: Store) => Promise<void>): Promise<void> {
    await this.writer.write(async (tx) => {
      const pos = await tx.position(userId);
      await fn(tx.store);
      await tx.store.accountData.put(userId, '', 'm.push_rules', '{}', pos);
    });
    for (const hook of this.changed) hook(userId);
  }
}

type RuleCopy = Omit<PushRuleRow, 'user_id' | 'kind' | 'priority'>;

/** The copies, by kind, of the enabled rules about `oldRoomId` for `newRoomId`, but for a rule ID the kind already has. */
export function roomRuleCopies(rows: readonly PushRuleRow[], oldRoomId: string, newRoomId: string): Map<PushKind, RuleCopy[]> {
  const copies = new Map<PushKind, RuleCopy[]>();
  const add = (kind: PushKind, copy: RuleCopy) => {
    if (rows.some((r) => r.kind === kind && r.rule_id === copy.rule_id)) return;
    const list = copies.get(kind) ?? [];
    if (list.some((c) => c.rule_id === copy.rule_id)) return;
    copies.set(kind, [...list, copy]);
  };
  for (const row of rows) {
    if (row.enabled !== 1) continue;
    const kind = row.kind as PushKind;
    if (kind === 'room' && row.rule_id === oldRoomId) add(kind, { rule_id: newRoomId, conditions: null, pattern: null, actions: row.actions, enabled: 1 });
    if ((kind === 'override' || kind === 'underride') && row.conditions) {
      const conditions = JSON.parse(row.conditions) as unknown;
      if (!Array.isArray(conditions)) continue;
      const aboutRoom = (c: unknown): c is JsonObject => isObject(c) && c.key === 'room_id';
      if (!conditions.some((c) => aboutRoom(c) && c.pattern === oldRoomId)) continue;
      const moved = conditions.map((c: unknown) => (aboutRoom(c) ? { ...c, pattern: newRoomId } : c));
      add(kind, { rule_id: newRoomId, conditions: JSON.stringify(moved), pattern: null, actions: row.actions, enabled: 1 });
    }
  }
  return copies;
}
