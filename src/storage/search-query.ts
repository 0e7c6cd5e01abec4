/**
 * A user's search term as an FTS5 query that is always valid: the term is read the way PostgreSQL's
 * websearch_to_tsquery reads it (words are ANDed, "double quotes" make a phrase, `or` between two
 * terms, a leading `-` excludes), and every word or phrase goes to FTS5 as a quoted string, so no
 * operator, column filter, star, caret, NEAR or parenthesis of the user's ever reaches FTS5's parser.
 */

interface Term {
  text: string;
  negated: boolean;
  /** Set when `or` stood between this term and the one before. */
  or: boolean;
}

/** A word: letters, numbers, marks, underscores and inner hyphens (a leading hyphen negates). */
const WORD = /[\p{L}\p{N}\p{M}_-]+/gu;
/** Text FTS5's unicode61 tokenizer makes at least one token of. */
const HAS_TOKEN = /[\p{L}\p{N}]/u;

function terms(search: string): Term[] {
  const out: Term[] = [];
  let pendingOr = false;
  search.split('"').forEach((part, i) => {
    if (i % 2 === 1) {
      // Inside quotes: one phrase of its words.
      const words = (part.match(WORD) ?? []).filter((w) => HAS_TOKEN.test(w));
      if (words.length > 0) out.push({ text: words.join(' '), negated: false, or: pendingOr });
      pendingOr = false;
      return;
    }
    for (const raw of part.match(WORD) ?? []) {
      const negated = raw.startsWith('-');
      const word = raw.replace(/^-+/, '');
      if (!HAS_TOKEN.test(word)) continue;
      if (!negated && word.toLowerCase() === 'or') {
        pendingOr = out.length > 0;
        continue;
      }
      out.push({ text: word, negated, or: pendingOr && !negated });
      pendingOr = false;
    }
  });
  return out;
}

const quote = (text: string) => `"${text.replaceAll('"', '""')}"`;

/**
 * The FTS5 MATCH expression for a search term, or undefined when the term has nothing to find
 * (no word, or only excluded ones): such a search matches nothing.
 */
export function ftsQueryOf(search: string): string | undefined {
  const groups: string[][] = [];
  const excluded: string[] = [];
  for (const term of terms(search)) {
    if (term.negated) excluded.push(quote(term.text));
    else if (term.or && groups.length > 0) groups.at(-1)!.push(quote(term.text));
    else groups.push([quote(term.text)]);
  }
  if (groups.length === 0) return undefined;
  const positive = groups.map((g) => (g.length === 1 ? g[0]! : `(${g.join(' OR ')})`)).join(' AND ');
  return excluded.length === 0 ? positive : `(${positive})${excluded.map((e) => ` NOT ${e}`).join('')}`;
}
