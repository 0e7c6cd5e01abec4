const USER_ID = /^@[^:]+:.+$/;

/** `@localpart:server.name`, loosely: the shape a client's user ID must have before we look further. */
export function isUserId(value: string): boolean {
  return USER_ID.test(value);
}

/** The server part of a user ID (everything after the first colon; localparts have none). */
export function serverNameOf(userId: string): string {
  return userId.slice(userId.indexOf(':') + 1);
}
