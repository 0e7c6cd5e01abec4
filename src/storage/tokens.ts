import { sql, type Insertable, type Kysely } from 'kysely';
import { HotQuery } from './compiled.js';
import type { AccessTokensTable, Database, RefreshTokensTable } from './schema.js';
import { TOKENS_CHANNEL } from './stream-channel.js';

export interface TokenOwner {
  user_id: string;
  device_id: string;
  expires_ts: number | null;
  refresh_token_hash: string | null;
  prev_refresh_hash: string | null;
  is_guest: number;
  deactivated: number;
}

export interface RefreshTokenRow {
  user_id: string;
  device_id: string;
  expires_ts: number | null;
  prev_token_hash: string | null;
}

/** One indexed lookup per authenticated request: the token's owner and the account's state. */
const FIND_ACCESS_TOKEN = new HotQuery((db: Kysely<Database>, tokenHash: string) =>
  db
    .selectFrom('access_tokens')
    .innerJoin('users', 'users.user_id', 'access_tokens.user_id')
    .select(['access_tokens.user_id', 'access_tokens.device_id', 'access_tokens.expires_ts', 'access_tokens.refresh_token_hash', 'access_tokens.prev_refresh_hash', 'users.is_guest', 'users.deactivated'])
    .where('access_tokens.token_hash', '=', tokenHash),
);

export class TokensRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async addAccessToken(row: Insertable<AccessTokensTable>): Promise<void> {
    await this.db.insertInto('access_tokens').values(row).execute();
  }

  async addRefreshToken(row: Insertable<RefreshTokensTable>): Promise<void> {
    await this.db.insertInto('refresh_tokens').values(row).execute();
  }

  async findAccessToken(tokenHash: string): Promise<TokenOwner | undefined> {
    const { rows } = await FIND_ACCESS_TOKEN.execute(this.db, tokenHash);
    return rows[0];
  }

  getRefreshToken(tokenHash: string): Promise<RefreshTokenRow | undefined> {
    return this.db
      .selectFrom('refresh_tokens')
      .select(['user_id', 'device_id', 'expires_ts', 'prev_token_hash'])
      .where('token_hash', '=', tokenHash)
      .executeTakeFirst();
  }

  /**
   * Once the pair that replaced a refresh token is used, the replaced token dies, with what it
   * minted and any other pair minted from it that the client never used (e.g. an answer it lost).
   */
  async revokeReplaced(prevRefreshHash: string, keepRefreshHash: string): Promise<void> {
    await this.db.deleteFrom('refresh_tokens').where('token_hash', '=', prevRefreshHash).execute();
    await this.db.deleteFrom('access_tokens').where('refresh_token_hash', '=', prevRefreshHash).execute();
    await this.db
      .deleteFrom('refresh_tokens')
      .where('prev_token_hash', '=', prevRefreshHash)
      .where('token_hash', '!=', keepRefreshHash)
      .execute();
    await this.db
      .deleteFrom('access_tokens')
      .where('prev_refresh_hash', '=', prevRefreshHash)
      .where('refresh_token_hash', '!=', keepRefreshHash)
      .execute();
    await this.db.updateTable('access_tokens').set({ prev_refresh_hash: null }).where('refresh_token_hash', '=', keepRefreshHash).execute();
    await this.db.updateTable('refresh_tokens').set({ prev_token_hash: null }).where('token_hash', '=', keepRefreshHash).execute();
  }

  /**
   * PostgreSQL only: a notice on the access-token channel (stream-channel.ts), heard by every
   * process when this unit of work commits, and not at all if it rolls back.
   */
  async notifyTokens(payload: string): Promise<void> {
    await sql`SELECT pg_notify(${TOKENS_CHANNEL}, ${payload})`.execute(this.db);
  }

  async deleteAccessToken(tokenHash: string): Promise<void> {
    await this.db.deleteFrom('access_tokens').where('token_hash', '=', tokenHash).execute();
  }

  /** Deletes access tokens minted from a refresh token, once its successor is issued. */
  async deleteAccessTokensOfRefresh(refreshTokenHash: string): Promise<void> {
    await this.db.deleteFrom('access_tokens').where('refresh_token_hash', '=', refreshTokenHash).execute();
  }

  /** Deletes the tokens of the given devices (all of the user's when deviceIds is undefined), except `keepDevice`. */
  async deleteForDevices(userId: string, deviceIds?: readonly string[], keepDevice?: string): Promise<void> {
    if (deviceIds && deviceIds.length === 0) return;
    for (const table of ['access_tokens', 'refresh_tokens'] as const) {
      let query = this.db.deleteFrom(table).where('user_id', '=', userId);
      if (deviceIds) query = query.where('device_id', 'in', deviceIds);
      if (keepDevice !== undefined) query = query.where('device_id', '!=', keepDevice);
      await query.execute();
    }
  }
}
