import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PushEventFields, splitKey } from '../src/services/push-rules/event-fields.js';
import { CompiledRuleset, type PushOutcome, type RoomFacts } from '../src/services/push-rules/evaluator.js';
import { buildRuleset } from '../src/services/push-rules/push-rules.js';
import { compileWordGlob } from '../src/services/push-rules/word-glob.js';
import type { PushRuleOverrideRow, PushRuleRow } from '../src/storage/push-rules.js';

const ME = '@alice:test.local';
const OTHER = '@bob:test.local';
const ROOM = '!room:test.local';

function facts(over: Partial<{ memberCount: number; senderPowerLevel: number; roomLevel: number }> = {}): RoomFacts {
  return { memberCount: over.memberCount ?? 5, senderPowerLevel: over.senderPowerLevel ?? 0, notificationLevel: (key) => (key === 'room' ? (over.roomLevel ?? 50) : 50) };
}

function message(content: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'm.room.message', room_id: ROOM, sender: OTHER, event_id: '$e', content: { msgtype: 'm.text', ...content }, ...extra };
}

function evaluate(event: Record<string, unknown>, options: { rows?: PushRuleRow[]; overrides?: PushRuleOverrideRow[]; room?: RoomFacts; displayName?: string | null } = {}): PushOutcome | undefined {
  const rules = new CompiledRuleset(buildRuleset(ME, options.rows ?? [], options.overrides ?? []));
  return rules.evaluate({ fields: new PushEventFields(event), room: options.room ?? facts() }, { userId: ME, displayName: options.displayName === undefined ? 'Alice Liddell' : options.displayName });
}

const userRule = (kind: string, rule_id: string, actions: unknown[], extra: Partial<PushRuleRow> = {}): PushRuleRow => ({
  user_id: ME,
  kind,
  rule_id,
  priority: 0,
  conditions: null,
  pattern: null,
  actions: JSON.stringify(actions),
  enabled: 1,
  ...extra,
});

describe('push rules: the server-default rules, one by one', () => {
  it('.m.rule.master: disabled by default; enabled, it silences everything', () => {
    assert.equal(evaluate(message({ body: 'hi' }))?.ruleId, '.m.rule.message');
    const silenced = evaluate(message({ body: 'hi alice' }), { overrides: [{ user_id: ME, kind: 'override', rule_id: '.m.rule.master', enabled: 1, actions: null }] });
    assert.equal(silenced?.ruleId, '.m.rule.master');
    assert.equal(silenced?.notify, false);
  });

  it('.m.rule.suppress_notices: notices do not notify', () => {
    const out = evaluate(message({ msgtype: 'm.notice', body: 'bot says alice' }));
    assert.equal(out?.ruleId, '.m.rule.suppress_notices');
    assert.equal(out?.notify, false);
  });

  it('.m.rule.invite_for_me: an invite of me notifies with the default sound; one of someone else does not', () => {
    const invite = (target: string) => ({ type: 'm.room.member', state_key: target, sender: OTHER, room_id: ROOM, content: { membership: 'invite' } });
    const mine = evaluate(invite(ME));
    assert.equal(mine?.ruleId, '.m.rule.invite_for_me');
    assert.deepEqual([mine?.notify, mine?.tweaks.sound, mine?.highlight], [true, 'default', false]);
    assert.equal(evaluate(invite('@carol:test.local'))?.ruleId, '.m.rule.member_event');
  });

  it('.m.rule.member_event: other membership events do not notify', () => {
    const out = evaluate({ type: 'm.room.member', state_key: OTHER, sender: OTHER, room_id: ROOM, content: { membership: 'join' } });
    assert.equal(out?.ruleId, '.m.rule.member_event');
    assert.equal(out?.notify, false);
  });

  it('.m.rule.is_user_mention: m.mentions.user_ids naming me highlights', () => {
    const out = evaluate(message({ body: 'no name here', 'm.mentions': { user_ids: [ME] } }));
    assert.equal(out?.ruleId, '.m.rule.is_user_mention');
    assert.deepEqual([out?.notify, out?.highlight, out?.tweaks.sound], [true, true, 'default']);
    assert.equal(evaluate(message({ body: 'x', 'm.mentions': { user_ids: [OTHER] } }))?.ruleId, '.m.rule.message');
  });

  it('.m.rule.contains_display_name: my display name as words in the body, case-insensitively, unless m.mentions is present', () => {
    assert.equal(evaluate(message({ body: 'ask ALICE LIDDELL, she knows' }))?.ruleId, '.m.rule.contains_display_name');
    assert.equal(evaluate(message({ body: 'xAlice Liddellx' }), { displayName: 'Alice Liddell' })?.ruleId, '.m.rule.message');
    assert.equal(evaluate(message({ body: 'Alice Liddell', 'm.mentions': {} }))?.ruleId, '.m.rule.message');
    assert.equal(evaluate(message({ body: 'no one' }), { displayName: null })?.ruleId, '.m.rule.message');
    // A display name is not a glob.
    assert.equal(evaluate(message({ body: 'a*b' }), { displayName: 'a*b' })?.ruleId, '.m.rule.contains_display_name');
    assert.equal(evaluate(message({ body: 'axxb' }), { displayName: 'a*b' })?.ruleId, '.m.rule.message');
  });

  it('.m.rule.is_room_mention: m.mentions.room from a sender allowed to notify the room', () => {
    const event = message({ body: 'all', 'm.mentions': { room: true } });
    const out = evaluate(event, { room: facts({ senderPowerLevel: 50 }) });
    assert.equal(out?.ruleId, '.m.rule.is_room_mention');
    assert.deepEqual([out?.notify, out?.highlight], [true, true]);
    assert.equal(evaluate(event, { room: facts({ senderPowerLevel: 49 }) })?.ruleId, '.m.rule.message');
    assert.equal(evaluate(message({ body: 'all', 'm.mentions': { room: 'true' } }), { room: facts({ senderPowerLevel: 100 }) })?.ruleId, '.m.rule.message');
  });

  it('.m.rule.roomnotif: @room in the body from an allowed sender, unless m.mentions is present', () => {
    assert.equal(evaluate(message({ body: 'hey @room!' }), { room: facts({ senderPowerLevel: 50 }) })?.ruleId, '.m.rule.roomnotif');
    assert.equal(evaluate(message({ body: 'hey @room!' }), { room: facts({ senderPowerLevel: 0 }) })?.ruleId, '.m.rule.message');
    assert.equal(evaluate(message({ body: 'hey @roommate' }), { room: facts({ senderPowerLevel: 50 }) })?.ruleId, '.m.rule.message');
    assert.equal(evaluate(message({ body: 'hey @room', 'm.mentions': {} }), { room: facts({ senderPowerLevel: 50 }) })?.ruleId, '.m.rule.message');
  });

  it('.m.rule.tombstone: a room upgrade notifies and highlights', () => {
    const out = evaluate({ type: 'm.room.tombstone', state_key: '', sender: OTHER, room_id: ROOM, content: { body: 'moved', replacement_room: '!new:x' } });
    assert.equal(out?.ruleId, '.m.rule.tombstone');
    assert.deepEqual([out?.notify, out?.highlight], [true, true]);
    assert.equal(evaluate({ type: 'm.room.tombstone', state_key: 'x', sender: OTHER, room_id: ROOM, content: {} }), undefined);
  });

  it('.m.rule.reaction: reactions do not notify', () => {
    const out = evaluate({ type: 'm.reaction', sender: OTHER, room_id: ROOM, content: { 'm.relates_to': { rel_type: 'm.annotation', event_id: '$x', key: '👍' } } });
    assert.deepEqual([out?.ruleId, out?.notify], ['.m.rule.reaction', false]);
  });

  it('.m.rule.room.server_acl: ACL changes do not notify', () => {
    const out = evaluate({ type: 'm.room.server_acl', state_key: '', sender: OTHER, room_id: ROOM, content: { allow: ['*'] } });
    assert.deepEqual([out?.ruleId, out?.notify], ['.m.rule.room.server_acl', false]);
  });

  it('.m.rule.suppress_edits: edits do not notify, even naming me', () => {
    const out = evaluate(message({ body: '* alice', 'm.relates_to': { rel_type: 'm.replace', event_id: '$x' } }));
    assert.deepEqual([out?.ruleId, out?.notify], ['.m.rule.suppress_edits', false]);
  });

  it('.m.rule.contains_user_name: my localpart as a word in the body highlights', () => {
    const out = evaluate(message({ body: 'thanks, alice.' }), { displayName: null });
    assert.deepEqual([out?.ruleId, out?.highlight, out?.tweaks.sound], ['.m.rule.contains_user_name', true, 'default']);
    assert.equal(evaluate(message({ body: 'malice' }), { displayName: null })?.ruleId, '.m.rule.message');
    assert.equal(evaluate(message({ body: 'alice', 'm.mentions': {} }), { displayName: null })?.ruleId, '.m.rule.message');
  });

  it('.m.rule.call: call invites ring', () => {
    const out = evaluate({ type: 'm.call.invite', sender: OTHER, room_id: ROOM, content: {} });
    assert.deepEqual([out?.ruleId, out?.tweaks.sound], ['.m.rule.call', 'ring']);
  });

  it('.m.rule.encrypted_room_one_to_one and .m.rule.room_one_to_one: two members, with sound', () => {
    const enc = evaluate({ type: 'm.room.encrypted', sender: OTHER, room_id: ROOM, content: { algorithm: 'x' } }, { room: facts({ memberCount: 2 }) });
    assert.deepEqual([enc?.ruleId, enc?.tweaks.sound], ['.m.rule.encrypted_room_one_to_one', 'default']);
    const msg = evaluate(message({ body: 'hi' }), { room: facts({ memberCount: 2 }) });
    assert.deepEqual([msg?.ruleId, msg?.tweaks.sound], ['.m.rule.room_one_to_one', 'default']);
  });

  it('.m.rule.message and .m.rule.encrypted: notify without sound in bigger rooms', () => {
    const msg = evaluate(message({ body: 'hi' }));
    assert.deepEqual([msg?.ruleId, msg?.notify, msg?.tweaks], ['.m.rule.message', true, {}]);
    const enc = evaluate({ type: 'm.room.encrypted', sender: OTHER, room_id: ROOM, content: {} });
    assert.deepEqual([enc?.ruleId, enc?.notify], ['.m.rule.encrypted', true]);
  });

  it('an event no rule matches does nothing', () => {
    assert.equal(evaluate({ type: 'm.room.topic', state_key: '', sender: OTHER, room_id: ROOM, content: { topic: 'x' } }), undefined);
  });
});

describe('push rules: condition kinds', () => {
  const override = (conditions: unknown[]) => evaluate(message({ body: 'plain', n: 3, flag: true, nothing: null, list: ['a', 7, true, null], 'dotted.key': 'yes', 'back\\slash': 'b' }), {
    rows: [userRule('override', 'mine', ['notify', { set_tweak: 'sound', value: 'custom' }], { conditions: JSON.stringify(conditions) })],
  });
  const matches = (conditions: unknown[]) => override(conditions)?.ruleId === 'mine';

  it('event_match: a case-insensitive glob over the whole value, absent or non-string values never match', () => {
    assert.ok(matches([{ kind: 'event_match', key: 'type', pattern: 'M.ROOM.*' }]));
    assert.ok(matches([{ kind: 'event_match', key: 'content.msgtype', pattern: 'm.te?t' }]));
    assert.ok(!matches([{ kind: 'event_match', key: 'type', pattern: 'm.room' }]), 'whole value, not a prefix');
    assert.ok(!matches([{ kind: 'event_match', key: 'content.n', pattern: '*' }]), 'a number is no string');
    assert.ok(!matches([{ kind: 'event_match', key: 'content.absent', pattern: '*' }]));
    assert.ok(matches([{ kind: 'event_match', key: 'content.body', pattern: 'pl*' }]), 'content.body: word-bounded');
    assert.ok(!matches([{ kind: 'event_match', key: 'content.body', pattern: 'lai' }]));
  });

  it('dotted keys: escaped dots and backslashes name one property', () => {
    assert.deepEqual(splitKey('content.m\\.mentions.user_ids'), ['content', 'm.mentions', 'user_ids']);
    assert.deepEqual(splitKey('a\\\\.b'), ['a\\', 'b']);
    assert.deepEqual(splitKey('a\\b'), ['a\\b']);
    assert.ok(matches([{ kind: 'event_match', key: 'content.dotted\\.key', pattern: 'yes' }]));
    assert.ok(!matches([{ kind: 'event_match', key: 'content.dotted.key', pattern: 'yes' }]));
    assert.ok(matches([{ kind: 'event_match', key: 'content.back\\\\slash', pattern: 'b' }]));
  });

  it('event_property_is: exact scalar equality, type included', () => {
    assert.ok(matches([{ kind: 'event_property_is', key: 'content.n', value: 3 }]));
    assert.ok(!matches([{ kind: 'event_property_is', key: 'content.n', value: '3' }]));
    assert.ok(matches([{ kind: 'event_property_is', key: 'content.flag', value: true }]));
    assert.ok(matches([{ kind: 'event_property_is', key: 'content.nothing', value: null }]));
    assert.ok(!matches([{ kind: 'event_property_is', key: 'content.absent', value: null }]), 'absent is not null');
    assert.ok(!matches([{ kind: 'event_property_is', key: 'content.body', value: 'PLAIN' }]), 'case-sensitive');
  });

  it('event_property_contains: an array holding the exact value', () => {
    assert.ok(matches([{ kind: 'event_property_contains', key: 'content.list', value: 'a' }]));
    assert.ok(matches([{ kind: 'event_property_contains', key: 'content.list', value: 7 }]));
    assert.ok(matches([{ kind: 'event_property_contains', key: 'content.list', value: null }]));
    assert.ok(!matches([{ kind: 'event_property_contains', key: 'content.list', value: 'A' }]));
    assert.ok(!matches([{ kind: 'event_property_contains', key: 'content.body', value: 'plain' }]), 'not an array');
  });

  it('contains_display_name: as a condition of a user rule', () => {
    assert.ok(!matches([{ kind: 'contains_display_name' }]));
    const out = evaluate(message({ body: 'Alice Liddell?' }), { rows: [userRule('override', 'dn', ['notify'], { conditions: JSON.stringify([{ kind: 'contains_display_name' }]) })] });
    assert.equal(out?.ruleId, 'dn');
  });

  it('room_member_count: N, ==, <, >, <=, >=; malformed never matches', () => {
    const at = (is: string, memberCount: number) =>
      evaluate(message({ body: 'x' }), { room: facts({ memberCount }), rows: [userRule('override', 'mine', ['notify'], { conditions: JSON.stringify([{ kind: 'room_member_count', is }]) })] })?.ruleId === 'mine';
    assert.ok(at('3', 3) && !at('3', 4));
    assert.ok(at('==3', 3) && !at('==3', 2));
    assert.ok(at('<3', 2) && !at('<3', 3));
    assert.ok(at('>3', 4) && !at('>3', 3));
    assert.ok(at('<=3', 3) && !at('<=3', 4));
    assert.ok(at('>=3', 3) && !at('>=3', 2));
    assert.ok(!at('=3', 3) && !at('3x', 3) && !at('', 3));
  });

  it('sender_notification_permission: the sender level against notifications[key]', () => {
    const at = (senderPowerLevel: number, roomLevel: number) =>
      evaluate(message({ body: 'x' }), { room: facts({ senderPowerLevel, roomLevel }), rows: [userRule('override', 'mine', ['notify'], { conditions: JSON.stringify([{ kind: 'sender_notification_permission', key: 'room' }]) })] })?.ruleId === 'mine';
    assert.ok(at(50, 50) && at(10, 0) && !at(49, 50));
  });

  it('an unknown condition kind never matches; no conditions always matches', () => {
    assert.ok(!matches([{ kind: 'org.example.unknown' }]));
    assert.ok(matches([]));
    assert.ok(!matches([{ kind: 'event_match', key: 'type', pattern: 'm.room.message' }, { kind: 'event_match', key: 'type', pattern: 'x' }]), 'all conditions must hold');
  });
});

describe('push rules: precedence, enabled flags and actions', () => {
  it('a user override rule comes after master but before the default overrides', () => {
    const out = evaluate(message({ msgtype: 'm.notice', body: 'n' }), { rows: [userRule('override', 'notices', ['notify'], { conditions: JSON.stringify([{ kind: 'event_match', key: 'content.msgtype', pattern: 'm.notice' }]) })] });
    assert.deepEqual([out?.ruleId, out?.notify], ['notices', true]);
  });

  it('kinds in the spec order: override, content, room, sender, underride', () => {
    const rows = [
      userRule('content', 'word', ['notify', { set_tweak: 'sound', value: 'content' }], { pattern: 'lunch' }),
      userRule('room', ROOM, []),
      userRule('sender', OTHER, ['notify', { set_tweak: 'sound', value: 'sender' }]),
    ];
    assert.equal(evaluate(message({ body: 'lunch?' }), { rows })?.ruleId, 'word');
    assert.equal(evaluate(message({ body: 'later' }), { rows })?.ruleId, ROOM, 'room rule before sender rule');
    assert.equal(evaluate(message({ body: 'later' }), { rows: rows.slice(2) })?.tweaks.sound, 'sender');
    assert.equal(evaluate(message({ body: 'later' }), { rows: [userRule('room', '!other:x', [])] })?.ruleId, '.m.rule.message');
    const under = evaluate(message({ body: 'x' }), { rows: [userRule('underride', 'u', ['notify', { set_tweak: 'sound', value: 'u' }], { conditions: '[]' })] });
    assert.equal(under?.ruleId, 'u', "a user's underride before the default underrides");
  });

  it('disabled rules are skipped, user and default alike', () => {
    assert.equal(evaluate(message({ body: 'lunch' }), { rows: [userRule('content', 'word', ['notify'], { pattern: 'lunch', enabled: 0 })] })?.ruleId, '.m.rule.message');
    const out = evaluate(message({ msgtype: 'm.notice', body: 'n' }), { overrides: [{ user_id: ME, kind: 'override', rule_id: '.m.rule.suppress_notices', enabled: 0, actions: null }] });
    assert.equal(out?.ruleId, '.m.rule.message');
  });

  it('actions: highlight defaults to true, an explicit false is kept; dont_notify and coalesce are no-ops', () => {
    const run = (actions: unknown[]) => evaluate(message({ body: 'x' }), { rows: [userRule('override', 'a', actions, { conditions: '[]' })] })!;
    assert.deepEqual([run(['notify', { set_tweak: 'highlight' }]).highlight], [true]);
    assert.deepEqual([run(['notify', { set_tweak: 'highlight', value: false }]).highlight], [false]);
    const old = run(['dont_notify']);
    assert.deepEqual([old.notify, old.highlight], [false, false]);
    assert.equal(run(['notify', 'coalesce']).notify, true);
    assert.equal(run([{ set_tweak: 'highlight' }]).highlight, false, 'no highlight without notify');
    const changed = evaluate(message({ body: 'x' }), { overrides: [{ user_id: ME, kind: 'underride', rule_id: '.m.rule.message', enabled: null, actions: JSON.stringify(['notify', { set_tweak: 'sound', value: 'bell' }]) }] });
    assert.equal(changed?.tweaks.sound, 'bell', "a default rule's changed actions apply");
  });
});

describe('push rules: word-bounded globs', () => {
  it('matches whole words only, with * and ? as wildcards, without backtracking', () => {
    const m = (p: string, v: string) => compileWordGlob(p)(v);
    assert.ok(m('cake', 'i want cake!'));
    assert.ok(!m('cake', 'cakes'));
    assert.ok(m('ca*', 'some cakes here'));
    assert.ok(m('c?ke', 'coke'));
    assert.ok(m('a*c', 'x ab b c y'));
    assert.ok(!m('a*c', 'x ab bcd'));
    assert.ok(m('é', 'café é'));
    assert.ok(!m('caf', 'café'));
    const long = 'a'.repeat(20_000);
    const started = performance.now();
    assert.ok(!m('a*a*a*a*a*b', long));
    assert.ok(performance.now() - started < 500);
  });
});
