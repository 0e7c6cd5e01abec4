/**
 * The spec's server-default push rules (client-server API, "Predefined Rules"), as data.
 * USER_ID and LOCALPART stand for the owner's Matrix ID and localpart.
 */
export type PushKind = 'override' | 'content' | 'room' | 'sender' | 'underride';

export interface PushRule {
  rule_id: string;
  default: boolean;
  enabled: boolean;
  actions: unknown[];
  conditions?: Record<string, unknown>[];
  pattern?: string;
}

const USER_ID = '$USER_ID';
const LOCALPART = '$LOCALPART';

const sound = (value: string) => ({ set_tweak: 'sound', value });
const highlight = { set_tweak: 'highlight' };
const match = (key: string, pattern: string) => ({ kind: 'event_match', key, pattern });
const is = (key: string, value: unknown) => ({ kind: 'event_property_is', key, value });

const rule = (rule_id: string, conditions: Record<string, unknown>[], actions: unknown[], enabled = true): PushRule => ({
  rule_id,
  default: true,
  enabled,
  conditions,
  actions,
});

/** The master rule always comes first, before user-defined override rules. */
export const MASTER_RULE: PushRule = rule('.m.rule.master', [], [], false);

export const DEFAULT_OVERRIDE: PushRule[] = [
  rule('.m.rule.suppress_notices', [match('content.msgtype', 'm.notice')], []),
  rule('.m.rule.invite_for_me', [match('type', 'm.room.member'), match('content.membership', 'invite'), match('state_key', USER_ID)], ['notify', sound('default')]),
  rule('.m.rule.member_event', [match('type', 'm.room.member')], []),
  rule(
    '.m.rule.is_user_mention',
    [{ kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: USER_ID }],
    ['notify', sound('default'), highlight],
  ),
  rule('.m.rule.contains_display_name', [{ kind: 'contains_display_name' }], ['notify', sound('default'), highlight]),
  rule('.m.rule.is_room_mention', [is('content.m\\.mentions.room', true), { kind: 'sender_notification_permission', key: 'room' }], ['notify', highlight]),
  rule('.m.rule.roomnotif', [match('content.body', '@room'), { kind: 'sender_notification_permission', key: 'room' }], ['notify', highlight]),
  rule('.m.rule.tombstone', [match('type', 'm.room.tombstone'), match('state_key', '')], ['notify', highlight]),
  rule('.m.rule.reaction', [match('type', 'm.reaction')], []),
  rule('.m.rule.room.server_acl', [match('type', 'm.room.server_acl'), match('state_key', '')], []),
  rule('.m.rule.suppress_edits', [is('content.m\\.relates_to.rel_type', 'm.replace')], []),
];

export const DEFAULT_CONTENT: PushRule[] = [
  { rule_id: '.m.rule.contains_user_name', default: true, enabled: true, pattern: LOCALPART, actions: ['notify', sound('default'), highlight] },
];

export const DEFAULT_UNDERRIDE: PushRule[] = [
  rule('.m.rule.call', [match('type', 'm.call.invite')], ['notify', sound('ring')]),
  rule('.m.rule.encrypted_room_one_to_one', [{ kind: 'room_member_count', is: '2' }, match('type', 'm.room.encrypted')], ['notify', sound('default')]),
  rule('.m.rule.room_one_to_one', [{ kind: 'room_member_count', is: '2' }, match('type', 'm.room.message')], ['notify', sound('default')]),
  rule('.m.rule.message', [match('type', 'm.room.message')], ['notify']),
  rule('.m.rule.encrypted', [match('type', 'm.room.encrypted')], ['notify']),
];

/** A deep copy of a default rule with the owner's IDs filled in. */
export function personalise(rule: PushRule, userId: string): PushRule {
  const localpart = userId.slice(1, userId.indexOf(':'));
  return JSON.parse(JSON.stringify(rule), (_key, value: unknown) => (value === USER_ID ? userId : value === LOCALPART ? localpart : value)) as PushRule;
}
