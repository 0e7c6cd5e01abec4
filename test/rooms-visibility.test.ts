import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { historyVisibilityOf, RoomVisibility, type VisibilityRow } from '../src/services/rooms/visibility.js';

const ME = '@me:test';

function message(pos: number, visibility: string): VisibilityRow {
  return { stream_pos: pos, type: 'm.room.message', state_key: null, membership: null, history_visibility: visibility, pdu: '{"content":{}}' };
}

function visibilityChange(pos: number, before: string, after: string): VisibilityRow {
  return { stream_pos: pos, type: 'm.room.history_visibility', state_key: '', membership: null, history_visibility: before, pdu: JSON.stringify({ content: { history_visibility: after } }) };
}

function member(pos: number, user: string, membership: string, visibility: string): VisibilityRow {
  return { stream_pos: pos, type: 'm.room.member', state_key: user, membership, history_visibility: visibility, pdu: JSON.stringify({ content: { membership } }) };
}

describe('history visibility rules', () => {
  it('reads an unknown or missing setting as shared', () => {
    assert.equal(historyVisibilityOf(undefined), 'shared');
    assert.equal(historyVisibilityOf('secret'), 'shared');
    assert.equal(historyVisibilityOf(3), 'shared');
    assert.equal(historyVisibilityOf('joined'), 'joined');
  });

  it('takes the membership just before the event', () => {
    const v = new RoomVisibility(ME, [
      { stream_pos: 10, membership: 'invite' },
      { stream_pos: 20, membership: 'join' },
      { stream_pos: 30, membership: 'leave' },
    ]);
    assert.equal(v.membershipBefore(10), undefined);
    assert.equal(v.membershipBefore(11), 'invite');
    assert.equal(v.membershipBefore(20), 'invite');
    assert.equal(v.membershipBefore(21), 'join');
    assert.equal(v.membershipBefore(31), 'leave');
  });

  it('applies each setting by the membership at the event', () => {
    // Invited at 10, joined at 20, left at 30.
    const v = new RoomVisibility(ME, [
      { stream_pos: 10, membership: 'invite' },
      { stream_pos: 20, membership: 'join' },
      { stream_pos: 30, membership: 'leave' },
    ]);
    const seen = (visibility: string) => [5, 15, 25, 35].filter((pos) => v.canSee(message(pos, visibility)));
    assert.deepEqual(seen('world_readable'), [5, 15, 25, 35]);
    // Shared: everything before a join of theirs, not after they left.
    assert.deepEqual(seen('shared'), [5, 15, 25]);
    assert.deepEqual(seen('invited'), [15, 25]);
    assert.deepEqual(seen('joined'), [25]);
    assert.deepEqual(seen('no-such-setting'), [5, 15, 25]);
  });

  it('shows nothing but world_readable history to someone never in the room', () => {
    const v = new RoomVisibility(ME, []);
    assert.equal(v.canSee(message(5, 'shared')), false);
    assert.equal(v.canSee(message(5, 'invited')), false);
    assert.equal(v.canSee(message(5, 'world_readable')), true);
    const nobody = new RoomVisibility(undefined, []);
    assert.equal(nobody.canSee(message(5, 'shared')), false);
    assert.equal(nobody.canSee(message(5, 'world_readable')), true);
  });

  it('shows a history_visibility change if the setting before or after it allows', () => {
    const stranger = new RoomVisibility(ME, []);
    assert.equal(stranger.canSee(visibilityChange(5, 'joined', 'world_readable')), true);
    assert.equal(stranger.canSee(visibilityChange(5, 'world_readable', 'joined')), true);
    assert.equal(stranger.canSee(visibilityChange(5, 'joined', 'shared')), false);
    // A state key other than the empty one sets nothing.
    assert.equal(stranger.canSee({ ...visibilityChange(5, 'joined', 'world_readable'), state_key: 'x' }), false);
  });

  it("shows the viewer's own member events if the membership before or after allows", () => {
    const v = new RoomVisibility(ME, [
      { stream_pos: 10, membership: 'invite' },
      { stream_pos: 20, membership: 'join' },
      { stream_pos: 30, membership: 'leave' },
    ]);
    assert.equal(v.canSee(member(10, ME, 'invite', 'joined')), false);
    assert.equal(v.canSee(member(10, ME, 'invite', 'invited')), true);
    assert.equal(v.canSee(member(20, ME, 'join', 'joined')), true);
    assert.equal(v.canSee(member(30, ME, 'leave', 'joined')), true);
    // Someone else's member events are events like any other.
    assert.equal(v.canSee(member(35, '@other:test', 'join', 'joined')), false);
    assert.equal(v.canSee(member(5, '@other:test', 'join', 'joined')), false);
  });
});
