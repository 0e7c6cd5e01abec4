/**
 * Push rule evaluation (client-server API, "Push Rules"): which of a user's rules an event matches
 * first, and so whether it notifies them, with which tweaks. Rules are compiled once per user's
 * ruleset (the globs included) and the event's properties are looked up once per event, so that a
 * message to a room of thousands costs one pass over each member's compiled rules.
 */
import { compileGlob, type GlobMatcher } from '../glob.js';
import type { PushEventFields } from './event-fields.js';
import type { PushKind, PushRule } from './push-defaults.js';
import { compileWordGlob, type WordMatcher } from './word-glob.js';

/** What the room says about the event, beyond the event itself. */
export interface RoomFacts {
  /** Joined members of the room. */
  memberCount: number;
  /** The sender's power level. */
  senderPowerLevel: number;
  /** The level each notification key needs (power levels `notifications`; `room` defaults to 50). */
  notificationLevel(key: string): number;
}

/** The member whose rules are evaluated. */
export interface Recipient {
  userId: string;
  /** Their display name in the room, if any. */
  displayName?: string | null;
}

export interface PushContext {
  fields: PushEventFields;
  room: RoomFacts;
}

/** What an event does for one user: the first matching enabled rule's actions. */
export interface PushOutcome {
  ruleId: string;
  kind: PushKind;
  notify: boolean;
  highlight: boolean;
  /** Every tweak set, `highlight` included when set. */
  tweaks: Record<string, unknown>;
  actions: unknown[];
}

type Test = (ctx: PushContext, user: Recipient) => boolean;

/**
 * A compiled condition. Those that do not depend on whose rules they are (most of them) are
 * shared by every member with the same condition, and their result is kept per event by `id`, so
 * that a room's thousand members with the default rules test each such condition once.
 */
interface Condition {
  id: number;
  perUser: boolean;
  test: Test;
}

let nextConditionId = 0;
const condition = (test: Test, perUser = false): Condition => ({ id: nextConditionId++, perUser, test });

interface CompiledRule {
  ruleId: string;
  kind: PushKind;
  enabled: boolean;
  /** Legacy mention rules, which do not apply to events whose content has `m.mentions`. */
  legacyMention: boolean;
  conditions: Condition[];
  /** Shared by every event the rule matches: callers must not change it. */
  outcome: Readonly<PushOutcome>;
}

const LEGACY_MENTION_RULES = new Set(['.m.rule.contains_display_name', '.m.rule.contains_user_name', '.m.rule.roomnotif']);
const BODY = 'content.body';
const NEVER: Condition = condition(() => false);

/** Conditions compiled once for every user with the same condition (most of them come from the defaults). */
const conditionCache = new Map<string, Condition>();
const CONDITION_CACHE_LIMIT = 20_000;

function cachedCondition(json: string, make: () => Condition): Condition {
  let condition = conditionCache.get(json);
  if (!condition) {
    if (conditionCache.size >= CONDITION_CACHE_LIMIT) conditionCache.clear();
    condition = make();
    conditionCache.set(json, condition);
  }
  return condition;
}

const displayNameMatchers = new Map<string, WordMatcher>();

/** A display name is matched as it is written: its `*` and `?` are no wildcards. */
function displayNameMatcher(name: string): WordMatcher {
  let matcher = displayNameMatchers.get(name);
  if (!matcher) {
    if (displayNameMatchers.size >= CONDITION_CACHE_LIMIT) displayNameMatchers.clear();
    matcher = compileWordGlob(name.toLowerCase(), { glob: false });
    displayNameMatchers.set(name, matcher);
  }
  return matcher;
}

/** A glob over the whole value, or (content.body) over any word-bounded part of it; both case-insensitive. */
function eventMatch(key: string, pattern: string): Condition {
  const lowered = pattern.toLowerCase();
  const matcher: GlobMatcher | WordMatcher = key === BODY ? compileWordGlob(lowered) : compileGlob(lowered);
  return condition((ctx) => {
    const value = ctx.fields.lowerString(key);
    return value !== undefined && matcher(value);
  });
}

function isScalar(value: unknown): value is string | number | boolean | null {
  return value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isInteger(value));
}

/** `room_member_count`'s `is`: `N`, `==N`, `<N`, `>N`, `<=N` or `>=N`; anything else never matches. */
function memberCount(is: unknown): Condition {
  if (typeof is !== 'string') return NEVER;
  const m = /^(==|<=|>=|<|>)?([0-9]+)$/.exec(is);
  if (!m) return NEVER;
  const n = Number(m[2]);
  const compare: Record<string, (count: number) => boolean> = {
    '==': (c) => c === n,
    '<': (c) => c < n,
    '>': (c) => c > n,
    '<=': (c) => c <= n,
    '>=': (c) => c >= n,
  };
  const test = compare[m[1] ?? '==']!;
  return condition((ctx) => test(ctx.room.memberCount));
}

function compileCondition(raw: Record<string, unknown>): Condition {
  const json = JSON.stringify(raw);
  return cachedCondition(json, () => {
    const { kind, key, pattern, value } = raw;
    switch (kind) {
      case 'event_match':
        return typeof key === 'string' && typeof pattern === 'string' ? eventMatch(key, pattern) : NEVER;
      case 'event_property_is':
        if (typeof key !== 'string' || !isScalar(value)) return NEVER;
        return condition((ctx) => ctx.fields.value(key) === value);
      case 'event_property_contains':
        if (typeof key !== 'string' || !isScalar(value)) return NEVER;
        return condition((ctx) => {
          const list = ctx.fields.value(key);
          return Array.isArray(list) && list.some((item) => item === value);
        });
      case 'contains_display_name':
        return condition((ctx, user) => {
          const name = user.displayName;
          if (!name) return false;
          const body = ctx.fields.lowerString(BODY);
          if (body === undefined) return false;
          return displayNameMatcher(name)(body);
        }, true);
      case 'room_member_count':
        return memberCount(raw.is);
      case 'sender_notification_permission':
        if (typeof key !== 'string') return NEVER;
        return condition((ctx) => ctx.room.senderPowerLevel >= ctx.room.notificationLevel(key));
      default:
        // "Unrecognised conditions MUST NOT match any events."
        return NEVER;
    }
  });
}

/** The outcome of a rule's actions: `notify`, and tweaks; `dont_notify`, `coalesce` and unknown actions are ignored. */
export function actionsOutcome(actions: unknown[]): Omit<PushOutcome, 'ruleId' | 'kind'> {
  let notify = false;
  const tweaks: Record<string, unknown> = {};
  for (const action of actions) {
    if (action === 'notify') notify = true;
    else if (action !== null && typeof action === 'object' && typeof (action as { set_tweak?: unknown }).set_tweak === 'string') {
      const { set_tweak: name, value } = action as { set_tweak: string; value?: unknown };
      // "If a highlight tweak is given with no value, its value is defined to be true."
      tweaks[name] = name === 'highlight' && value === undefined ? true : value;
    }
  }
  return { notify, highlight: notify && tweaks.highlight === true, tweaks, actions };
}

function compileRule(kind: PushKind, rule: PushRule): CompiledRule {
  let conditions: Condition[];
  if (kind === 'content') {
    conditions = typeof rule.pattern === 'string' ? [compileCondition({ kind: 'event_match', key: BODY, pattern: rule.pattern })] : [NEVER];
  } else if (kind === 'room') {
    conditions = [compileCondition({ kind: 'event_match', key: 'room_id', pattern: rule.rule_id })];
  } else if (kind === 'sender') {
    conditions = [compileCondition({ kind: 'event_match', key: 'sender', pattern: rule.rule_id })];
  } else {
    conditions = (rule.conditions ?? []).map((c) => (c !== null && typeof c === 'object' ? compileCondition(c) : NEVER));
  }
  return {
    ruleId: rule.rule_id,
    kind,
    enabled: rule.enabled,
    legacyMention: rule.default && LEGACY_MENTION_RULES.has(rule.rule_id),
    conditions,
    outcome: Object.freeze({ ruleId: rule.rule_id, kind, ...actionsOutcome(Array.isArray(rule.actions) ? rule.actions : []) }),
  };
}

const TRUE = 1;
const FALSE = 2;

function holds(condition: Condition, ctx: PushContext, recipient: Recipient, memo: Uint8Array): boolean {
  if (condition.perUser) return condition.test(ctx, recipient);
  const known = memo[condition.id];
  if (known) return known === TRUE;
  const result = condition.test(ctx, recipient);
  memo[condition.id] = result ? TRUE : FALSE;
  return result;
}

export const EVALUATION_ORDER: readonly PushKind[] = ['override', 'content', 'room', 'sender', 'underride'];

/** One user's ruleset, compiled: evaluate it against any number of events. */
export class CompiledRuleset {
  private readonly rules: CompiledRule[];

  constructor(ruleset: Record<PushKind, PushRule[]>) {
    this.rules = EVALUATION_ORDER.flatMap((kind) => ruleset[kind].filter((rule) => rule.enabled).map((rule) => compileRule(kind, rule)));
  }

  /** The first enabled rule the event matches, or undefined when none does. */
  evaluate(ctx: PushContext, recipient: Recipient): Readonly<PushOutcome> | undefined {
    const hasMentions = ctx.fields.hasMentions;
    const memo = ctx.fields.memo(nextConditionId);
    for (const rule of this.rules) {
      if (rule.legacyMention && hasMentions) continue;
      let matched = true;
      for (const condition of rule.conditions) {
        if (!holds(condition, ctx, recipient, memo)) {
          matched = false;
          break;
        }
      }
      if (matched) return rule.outcome;
    }
    return undefined;
  }
}
