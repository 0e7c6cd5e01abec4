import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { ftsQueryOf } from '../src/storage/search-query.js';

/** Characters and words FTS5's query grammar gives a meaning to, and ordinary ones around them. */
const PIECES = ['"', "'", '*', '(', ')', ':', '^', '+', '-', '{', '}', ',', ' ', ' ', ' ', 'AND', 'OR', 'NOT', 'NEAR', 'or', 'and', 'value', 'fig', 'jam', '_', '\\', '\u00e9', '\u4e2d', '\ud83d\ude00', '\t', 'NEAR/2', '0', '12'];

/** A seeded generator (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('the FTS5 query made of a search term', () => {
  const db = new SQLite(':memory:');
  db.exec("CREATE VIRTUAL TABLE t USING fts5(value, tokenize='porter unicode61 remove_diacritics 2')");
  db.prepare('INSERT INTO t (value) VALUES (?)').run('fig jam with value and more');
  const match = db.prepare('SELECT count(*) AS n FROM t WHERE t MATCH ?');
  const count = (term: string) => {
    const query = ftsQueryOf(term);
    return query === undefined ? 0 : (match.get(query) as { n: number }).n;
  };

  it('is valid FTS5 for 20,000 random terms made of its operators and quotes', () => {
    const random = rng(20261202);
    for (let i = 0; i < 20_000; i++) {
      const length = 1 + Math.floor(random() * 12);
      const term = Array.from({ length }, () => PIECES[Math.floor(random() * PIECES.length)]!).join(random() < 0.5 ? '' : ' ');
      assert.doesNotThrow(() => count(term), `term ${JSON.stringify(term)} -> ${ftsQueryOf(term)}`);
    }
  });

  it('reads words, phrases, or and exclusions as websearch_to_tsquery does, and never a user operator', () => {
    assert.equal(count('fig'), 1);
    assert.equal(count('FIG JAM'), 1);
    assert.equal(count('fig zzz'), 0);
    assert.equal(count('zzz or fig'), 1);
    assert.equal(count('"fig jam"'), 1);
    assert.equal(count('"jam fig"'), 0);
    assert.equal(count('fig -jam'), 0);
    assert.equal(count('fig -zzz'), 1);
    assert.equal(count('-fig'), 0, 'only exclusions find nothing');
    assert.equal(ftsQueryOf('-fig'), undefined);
    assert.equal(ftsQueryOf('*'), undefined);
    assert.equal(ftsQueryOf('value:fig'), '"value" AND "fig"');
    assert.equal(ftsQueryOf('fi*'), '"fi"', 'no prefix query from a star');
    assert.equal(count('fi*'), 0);
    assert.equal(ftsQueryOf('NEAR(fig jam)'), '"NEAR" AND "fig" AND "jam"');
    assert.equal(ftsQueryOf('a or b -c'), '(("a" OR "b")) NOT "c"');
    assert.equal(ftsQueryOf('e-mail'), '"e-mail"');
  });
});
