import type { StreamsRepo } from '../../storage/streams.js';

/**
 * Sync tokens (next_batch, since, /keys/changes from and to): opaque to clients, who keep them
 * across server upgrades, so every format ever issued must still parse or be refused cleanly.
 *
 *   m1_<stream>   the position in the global stream (today's format). A later version adds its
 *                 positions as more "_"-separated fields (room topological order, typing,
 *                 receipts, or one position per writer) under a new prefix.
 *   s<P>          before the global stream: a position in the requesting user's own stream.
 */
export type SyncToken = { version: 'm1'; stream: number } | { version: 'legacy'; userPosition: number };

/** Positions are non-negative integers of at most 15 digits: exact as JavaScript numbers. */
const POSITION = /^\d{1,15}$/;

export function encodeSyncToken(stream: number): string {
  return `m1_${stream}`;
}

/** The token, or undefined when it is not one this server issues or ever issued. */
export function parseSyncToken(token: string): SyncToken | undefined {
  const legacy = /^s(\d{1,15})$/.exec(token);
  if (legacy) return { version: 'legacy', userPosition: Number(legacy[1]) };
  const [version, ...positions] = token.split('_');
  if (version !== 'm1' || positions.length !== 1 || !POSITION.test(positions[0]!)) return undefined;
  return { version: 'm1', stream: Number(positions[0]) };
}

/** The global stream position a token stands for, for the user presenting it; undefined when it is no token. */
export async function tokenPosition(token: string, userId: string, streams: StreamsRepo): Promise<number | undefined> {
  const parsed = parseSyncToken(token);
  if (!parsed) return undefined;
  return parsed.version === 'm1' ? parsed.stream : streams.fromLegacy(userId, parsed.userPosition);
}
