/**
 * Glob matching without regular expressions, so that no pattern a client sends can make matching
 * backtrack exponentially. The spec's glob-style matching: `*` matches any run of characters
 * (including none), `?` exactly one character; every other character, regex metacharacters
 * included, stands for itself.
 *
 * The pattern is split at its stars; the first piece must match at the start, the last at the end,
 * and each piece between is taken at its leftmost place after the previous one. Taking the leftmost
 * place never loses a match (any later place leaves less room for what follows), so there is no
 * backtracking at all: pieces without `?` are found with indexOf, pieces with `?` by a scan, which
 * is O(value length x pattern length) at worst.
 */
export interface GlobOptions {
  /**
   * Whether `?` matches one character. The spec's push rule globs say so; sync filter event types
   * name only `*` as a wildcard, so filters pass false and `?` is then a literal question mark.
   */
  questionMark?: boolean;
  /** Compare case-insensitively (push rule `event_match` conditions are). */
  ignoreCase?: boolean;
}

export type GlobMatcher = (value: string) => boolean;

/** Compiles a glob once, for testing many values against it. */
export function compileGlob(pattern: string, options: GlobOptions = {}): GlobMatcher {
  const questionMark = options.questionMark ?? true;
  const fold = options.ignoreCase ? (s: string) => s.toLowerCase() : (s: string) => s;
  const glob = fold(pattern);
  if (questionMark && glob.includes('?')) {
    // '?' is one character, not one UTF-16 unit: compare code point by code point.
    const pieces = glob.split('*').map((piece) => Array.from(piece));
    return (value) => matchPieces(pieces, Array.from(fold(value)), codePointOps);
  }
  const pieces = glob.split('*');
  return (value) => matchPieces(pieces, fold(value), literalOps);
}

/** One-off match; compile once with compileGlob when testing many values. */
export function globMatches(pattern: string, value: string, options: GlobOptions = {}): boolean {
  return compileGlob(pattern, options)(value);
}

interface PieceOps<S extends { length: number }> {
  /** Whether `piece` matches `value` at `at` (the caller has checked that it fits). */
  matchesAt(piece: S, value: S, at: number): boolean;
  /** The leftmost place at or after `from` where `piece` matches, or -1. */
  find(piece: S, value: S, from: number): number;
}

const literalOps: PieceOps<string> = {
  matchesAt: (piece, value, at) => value.startsWith(piece, at),
  find: (piece, value, from) => value.indexOf(piece, from),
};

const codePointOps: PieceOps<string[]> = {
  matchesAt(piece, value, at) {
    for (let i = 0; i < piece.length; i++) if (piece[i] !== '?' && piece[i] !== value[at + i]) return false;
    return true;
  },
  find(piece, value, from) {
    for (let at = from; at + piece.length <= value.length; at++) if (codePointOps.matchesAt(piece, value, at)) return at;
    return -1;
  },
};

function matchPieces<S extends { length: number }>(pieces: S[], value: S, ops: PieceOps<S>): boolean {
  const first = pieces[0]!;
  if (pieces.length === 1) return first.length === value.length && ops.matchesAt(first, value, 0);
  const last = pieces[pieces.length - 1]!;
  const end = value.length - last.length;
  if (first.length > end) return false;
  if (!ops.matchesAt(first, value, 0) || !ops.matchesAt(last, value, end)) return false;
  let at = first.length;
  for (let i = 1; i < pieces.length - 1; i++) {
    const piece = pieces[i]!;
    const found = ops.find(piece, value, at);
    if (found < 0 || found + piece.length > end) return false;
    at = found + piece.length;
  }
  return true;
}
