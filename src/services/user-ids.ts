const USER_ID = /^@[^:]+:.+$/;

/** `@localpart:server.name`, loosely: the shape a client's user ID must have before we look further. */
export function isUserId(value: string): boolean {
  return USER_ID.test(value);
}

/** The server part of a user ID (everything after the first colon; localparts have none). */
export function serverNameOf(userId: string): string {
  return userId.slice(userId.indexOf(':') + 1);
}

/**
 * A room ID as the spec's grammar has it: the `!` sigil and an opaque part, at most 255 bytes in
 * all. Room versions before 12 add `:server.name`; version 12 room IDs have none, so no colon is
 * required. Whitespace and control characters appear in no room ID a server mints.
 */
export function isRoomId(value: string): boolean {
  return /^![^\s\p{Cc}]+$/u.test(value) && Buffer.byteLength(value) <= 255;
}
