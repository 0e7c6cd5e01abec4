import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { performance } from 'node:perf_hooks';
import { compileGlob, globMatches } from '../src/services/glob.js';

/** [pattern, value, expected] with the spec's glob-style matching ('*' and '?'). */
const CASES: [string, string, boolean][] = [
  ['', '', true],
  ['', 'a', false],
  ['abc', 'abc', true],
  ['abc', 'abcd', false],
  ['abc', 'ab', false],
  ['*', '', true],
  ['*', 'anything at all', true],
  ['**', '', true],
  ['m.*', 'm.room.message', true],
  ['m.*', 'm.', true],
  ['m.*', 'm', false],
  ['m.*', 'org.m.x', false],
  ['*.message', 'm.room.message', true],
  ['*.message', 'message', false],
  ['*message', 'message', true],
  ['m.*.message', 'm.room.message', true],
  ['m.*.message', 'm.message', false],
  ['m.*.*.message', 'm.a.b.message', true],
  ['*a*b*c*', 'xxaxxbxxcxx', true],
  ['*a*b*c*', 'xxcxxbxxaxx', false],
  ['a*a', 'a', false],
  ['a*a', 'aa', true],
  ['*ab', 'aab', true],
  ['*aab', 'aaab', true],
  ['a*b*b', 'abb', true],
  ['a*b*b', 'ab', false],
  ['?', 'a', true],
  ['?', '', false],
  ['?', 'ab', false],
  ['??', 'ab', true],
  ['a?c', 'abc', true],
  ['a?c', 'ac', false],
  ['*?', '', false],
  ['*?', 'x', true],
  ['?*?', 'x', false],
  ['?*?', 'xy', true],
  ['*b?d*', 'aabxdee', true],
  ['*b?d*', 'aabxxdee', false],
  ['cake*lie?', 'cakeisalie!', true],
  // Regular expression metacharacters stand for themselves.
  ['m.room', 'm.room', true],
  ['m.room', 'mxroom', false],
  ['(a)', '(a)', true],
  ['(a)', 'a', false],
  ['[ab]', '[ab]', true],
  ['[ab]', 'a', false],
  ['a+', 'a+', true],
  ['a+', 'aa', false],
  ['^a$', '^a$', true],
  ['^a$', 'a', false],
  ['a|b', 'a', false],
  ['a{2}', 'aa', false],
  ['a{2}', 'a{2}', true],
  ['\\d', '\\d', true],
  ['\\d', '1', false],
  ['.*', 'anything', false],
  ['.*', '.xyz', true],
  // '?' is one character, also outside the Basic Multilingual Plane.
  ['?', '😀', true],
  ['a?b', 'a😀b', true],
  ['*😀', 'x😀', true],
];

describe('glob matcher', () => {
  it('matches the spec glob-style patterns', () => {
    for (const [pattern, value, expected] of CASES) {
      assert.equal(globMatches(pattern, value), expected, `${JSON.stringify(pattern)} against ${JSON.stringify(value)}`);
    }
  });

  it('treats ? as a literal when asked (sync filter types name only *)', () => {
    assert.equal(globMatches('a?c', 'abc', { questionMark: false }), false);
    assert.equal(globMatches('a?c', 'a?c', { questionMark: false }), true);
    assert.equal(globMatches('*?', 'x?', { questionMark: false }), true);
    assert.equal(globMatches('*?', 'x', { questionMark: false }), false);
  });

  it('compares case-insensitively when asked (push rule event_match)', () => {
    assert.equal(globMatches('Cake*', 'cAKE is a lie'), false);
    assert.equal(globMatches('Cake*', 'cAKE is a lie', { ignoreCase: true }), true);
    assert.equal(globMatches('c?KE', 'CAke', { ignoreCase: true }), true);
  });

  it('a compiled glob can be reused', () => {
    const matches = compileGlob('org.example.*');
    assert.deepEqual(['org.example.a', 'org.example', 'org.examplex', 'org.example.'].map(matches), [true, false, false, true]);
  });

  it('takes linear-ish time on patterns that make backtracking regular expressions explode', () => {
    const value = 'a'.repeat(10_000);
    const started = performance.now();
    for (const pattern of ['*******x', `${'*a'.repeat(100)}*b`, `${'*?'.repeat(100)}*b`, `${'a*'.repeat(120)}b`]) {
      assert.equal(globMatches(pattern, value), false, pattern);
      assert.equal(globMatches(pattern.replace(/b$|x$/, 'a'), value), true, pattern);
    }
    assert.ok(performance.now() - started < 500, `took ${performance.now() - started} ms`);
  });
});
