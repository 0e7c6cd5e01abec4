/**
 * Glob matching "bounded by word boundaries", as push rules match `content.body` (content rules,
 * `event_match` on content.body, the display name rule): the pattern must match some run of the
 * value that starts at the value's start or after a non-word character, and ends at the value's end
 * or before one. No regular expression, so no pattern can make it backtrack: see glob.ts.
 *
 * With a star in the pattern, the leftmost place where the first piece can start is the best one
 * (every later place leaves less room for the rest), the middle pieces take their leftmost places
 * after it, and the last piece may then end at any boundary after them: O(value x pattern).
 */
export type WordMatcher = (value: string) => boolean;

const WORD = /[\p{L}\p{N}_]/u;

function isWordChar(c: string | undefined): boolean {
  return c !== undefined && WORD.test(c);
}

/** `pattern` and the values must be folded alike by the caller (push rules lower-case both). */
export function compileWordGlob(pattern: string, { glob = true }: { glob?: boolean } = {}): WordMatcher {
  const chars = (s: string) => Array.from(s);
  const pieces = (glob ? pattern.split('*') : [pattern]).map(chars);
  const wild = glob;
  const matchesAt = (piece: string[], value: string[], at: number) => {
    if (at < 0 || at + piece.length > value.length) return false;
    for (let i = 0; i < piece.length; i++) if (piece[i] !== value[at + i] && !(wild && piece[i] === '?')) return false;
    return true;
  };
  const startsWord = (value: string[], at: number) => at === 0 || !isWordChar(value[at - 1]);
  const endsWord = (value: string[], end: number) => end === value.length || !isWordChar(value[end]);
  const first = pieces[0]!;
  const last = pieces[pieces.length - 1]!;
  // Literal runs the value must contain: a cheap test that rejects most values before the scan.
  const required = (glob ? pattern.split('*') : [pattern]).flatMap((piece) => (glob ? piece.split('?') : [piece])).filter((run) => run.length > 0);

  return (text) => {
    for (const run of required) if (!text.includes(run)) return false;
    const value = chars(text);
    if (pieces.length === 1) {
      for (let at = 0; at + first.length <= value.length; at++) {
        if (startsWord(value, at) && endsWord(value, at + first.length) && matchesAt(first, value, at)) return true;
      }
      return false;
    }
    let start = -1;
    for (let at = 0; at + first.length <= value.length; at++) {
      if (startsWord(value, at) && matchesAt(first, value, at)) {
        start = at;
        break;
      }
    }
    if (start < 0) return false;
    let cursor = start + first.length;
    for (let i = 1; i < pieces.length - 1; i++) {
      const piece = pieces[i]!;
      let found = -1;
      for (let at = cursor; at + piece.length <= value.length; at++) {
        if (matchesAt(piece, value, at)) {
          found = at;
          break;
        }
      }
      if (found < 0) return false;
      cursor = found + piece.length;
    }
    for (let at = cursor; at + last.length <= value.length; at++) {
      if (endsWord(value, at + last.length) && matchesAt(last, value, at)) return true;
    }
    return false;
  };
}
