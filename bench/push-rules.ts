/**
 * Push rule evaluation for one message in a room of 1,000 members: the CPU time to evaluate every
 * member's rules (issue #13's target: under 5 ms in all). Side by side with a baseline that
 * builds and compiles each member's ruleset for every message, as an evaluator without the cache
 * would. Run: node --import tsx bench/push-rules.ts [members] [rounds]
 */
import { PushEventFields } from '../src/services/push-rules/event-fields.js';
import { CompiledRuleset, type RoomFacts } from '../src/services/push-rules/evaluator.js';
import { buildRuleset } from '../src/services/push-rules/push-rules.js';
import type { PushRuleRow } from '../src/storage/push-rules.js';
import { load } from './conditions.js';

const members = Number(process.argv[2] ?? 1000);
const rounds = Number(process.argv[3] ?? 200);
const users = Array.from({ length: members }, (_, i) => ({ userId: `@user${i}:bench.local`, displayName: `User Number ${i}` }));
// Every tenth member has rules of their own: a keyword, a muted room, an override.
const rowsOf = (userId: string, i: number): PushRuleRow[] =>
  i % 10 !== 0
    ? []
    : [
        { user_id: userId, kind: 'content', rule_id: 'kw', priority: 0, conditions: null, pattern: 'deploy*', actions: '["notify"]', enabled: 1 },
        { user_id: userId, kind: 'room', rule_id: '!other:bench.local', priority: 0, conditions: null, pattern: null, actions: '[]', enabled: 1 },
        { user_id: userId, kind: 'override', rule_id: 'bots', priority: 0, conditions: '[{"kind":"event_match","key":"sender","pattern":"@*bot:*"}]', pattern: null, actions: '[]', enabled: 1 },
      ];
const room: RoomFacts = { memberCount: members, senderPowerLevel: 0, notificationLevel: () => 50 };
const event = () => ({
  type: 'm.room.message',
  room_id: '!room:bench.local',
  sender: '@user1:bench.local',
  event_id: '$bench',
  content: { msgtype: 'm.text', body: 'Hello everyone, the deploy of release 1.2 is done; user number 42 please check the dashboards before lunch.' },
});

function cpuMs(fn: () => void): number {
  const start = process.cpuUsage();
  fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.95)]!;

// The cached path: rulesets compiled once per member (as PushRuleCache keeps them).
let compiled: CompiledRuleset[] = [];
const compileMs = cpuMs(() => (compiled = users.map((u, i) => new CompiledRuleset(buildRuleset(u.userId, rowsOf(u.userId, i), [])))));
let notified = 0;
const cached: number[] = [];
for (let r = 0; r < rounds; r++) {
  cached.push(
    cpuMs(() => {
      const ctx = { fields: new PushEventFields(event()), room };
      notified = 0;
      for (let i = 0; i < users.length; i++) if (compiled[i]!.evaluate(ctx, users[i]!)?.notify) notified++;
    }),
  );
}

// Baseline: every member's ruleset built and compiled for the message.
const baseline: number[] = [];
for (let r = 0; r < Math.max(5, Math.floor(rounds / 10)); r++) {
  baseline.push(
    cpuMs(() => {
      const ctx = { fields: new PushEventFields(event()), room };
      for (let i = 0; i < users.length; i++) new CompiledRuleset(buildRuleset(users[i]!.userId, rowsOf(users[i]!.userId, i), [])).evaluate(ctx, users[i]!);
    }),
  );
}

const result = {
  bench: 'push-rules',
  members,
  rounds,
  notified_members: notified,
  cached_cpu_ms: { median: Number(median(cached).toFixed(3)), p95: Number(p95(cached).toFixed(3)) },
  baseline_uncached_cpu_ms: { median: Number(median(baseline).toFixed(3)) },
  speedup: Number((median(baseline) / median(cached)).toFixed(1)),
  target_ms: 5,
  within_target: p95(cached) < 5,
  compile_all_once_cpu_ms: Number(compileMs.toFixed(3)),
  load: load(),
  node: process.version,
};
console.log(JSON.stringify(result, null, 2));
