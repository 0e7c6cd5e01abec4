import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeSyncToken, parseSyncToken } from '../src/services/sync/sync-token.js';
import { decodeNotice, encodeNotices } from '../src/storage/stream-channel.js';

describe('sync tokens', () => {
  it('writes the global position under a version prefix, and reads it back', () => {
    assert.equal(encodeSyncToken(0), 'm1_0');
    assert.equal(encodeSyncToken(123456789), 'm1_123456789');
    for (const position of [0, 1, 42, 999_999_999_999_999]) assert.deepEqual(parseSyncToken(encodeSyncToken(position)), { version: 'm1', stream: position });
  });

  it('still reads the tokens issued before the global stream as a position in the user’s own stream', () => {
    assert.deepEqual(parseSyncToken('s0'), { version: 'legacy', userPosition: 0 });
    assert.deepEqual(parseSyncToken('s17'), { version: 'legacy', userPosition: 17 });
  });

  it('refuses anything else, without throwing', () => {
    const garbage = [
      '',
      's',
      'm1',
      'm1_',
      'm1__5',
      'm1_5_',
      'm1_5_6',
      'm2_5',
      'M1_5',
      'm1_-5',
      'm1_+5',
      'm1_5.0',
      'm1_1e3',
      'm1_0x10',
      'm1_ 5',
      'm1_5 ',
      'm1_5\n',
      'm1_١٢',
      `m1_${'9'.repeat(16)}`,
      's-1',
      's+1',
      'sabc',
      ' s1',
      's1 ',
      `s${'9'.repeat(16)}`,
      's1_2',
      'garbage',
      '\u0000',
      '_'.repeat(10_000),
      'm1_'.repeat(1000),
    ];
    for (const token of garbage) assert.equal(parseSyncToken(token), undefined, JSON.stringify(token.slice(0, 40)));
  });
});

describe('stream notices between processes', () => {
  it('carries the position, user IDs and room IDs in a versioned payload', () => {
    const notice = { position: 77, users: ['@a:x', '@b:y'], rooms: ['!r:x'] };
    const payloads = encodeNotices('origin1', notice);
    assert.equal(payloads.length, 1);
    assert.ok(payloads[0]!.startsWith('1 origin1 77\n'));
    assert.deepEqual(decodeNotice(payloads[0]!), { origin: 'origin1', notice });
  });

  it('splits a notice for many users and rooms into payloads under Postgres’s 8000-byte limit, each with the position', () => {
    const users = Array.from({ length: 400 }, (_, i) => `@user-${i}-é${'x'.repeat(20)}:example.org`);
    const rooms = Array.from({ length: 300 }, (_, i) => `!room${i}${'y'.repeat(20)}:example.org`);
    const payloads = encodeNotices('o', { position: 5, users, rooms });
    assert.ok(payloads.length > 2, `${payloads.length} payloads`);
    const seen = { users: [] as string[], rooms: [] as string[] };
    for (const payload of payloads) {
      assert.ok(Buffer.byteLength(payload) <= 7000, `${Buffer.byteLength(payload)} bytes`);
      const decoded = decodeNotice(payload)!;
      assert.equal(decoded.notice.position, 5);
      seen.users.push(...decoded.notice.users);
      seen.rooms.push(...decoded.notice.rooms);
    }
    assert.deepEqual(seen, { users, rooms });
  });

  it('reads a payload of another format as unknown', () => {
    // The format before positions were carried: "<origin>\n<user>...".
    assert.equal(decodeNotice('abcdefghijkl\n@a:x'), undefined);
    assert.equal(decodeNotice(''), undefined);
    assert.equal(decodeNotice('2 o 5\n@a:x'), undefined);
    assert.equal(decodeNotice('1 o x\n@a:x'), undefined);
  });
});
