import { invalidParam } from '../../errors.js';

/**
 * Where a /search page ends: for `recent`, the stream position of the last match examined (the next
 * page has the older ones); for `rank`, how many matches were examined (rank order has no key to
 * resume from: a new event changes every match's score). `room` narrows the search to one room (a
 * room group's next_batch).
 */
export interface SearchCursor {
  order: 'rank' | 'recent';
  position: number;
  room?: string;
}

export function encodeSearchToken(cursor: SearchCursor): string {
  return Buffer.from(`${cursor.order}\n${cursor.position}\n${cursor.room ?? ''}`).toString('base64url');
}

/** The cursor a next_batch names; M_INVALID_PARAM for anything this server did not give. */
export function parseSearchToken(token: string): SearchCursor {
  const match = /^[A-Za-z0-9_-]{1,400}$/.test(token) ? /^(rank|recent)\n(\d{1,15})\n(![^\n]*)?$/.exec(Buffer.from(token, 'base64url').toString()) : null;
  if (!match) throw invalidParam('Invalid next_batch');
  const cursor: SearchCursor = { order: match[1] as SearchCursor['order'], position: Number(match[2]) };
  if (match[3] !== undefined) cursor.room = match[3];
  return cursor;
}
