import type { Generated } from 'kysely';
import type { AdminTables } from './admin-schema.js';
import type { MediaTables } from './media.js';
import type { ClientStateTables } from './client-state-schema.js';
import type { EphemeralTables } from './ephemeral-schema.js';
import type { RelationTables } from './relations-schema.js';
import type { DirectoryTables } from './directory-schema.js';
import type { SearchTables } from './search-schema.js';
import type { ProfileTables } from './profile-schema.js';
import type { RoomTables } from './rooms-schema.js';
import type { OutboxTable } from './outbox.js';
import type { PushTables } from './push-schema.js';
import type { ReportTables } from './reports-schema.js';
import type { RoomUpgradesTable } from './room-upgrades.js';
import type { UserThreepidIdServerTable } from './threepid-id-servers.js';
import type { ThreepidValidationSessionsTable } from './validation-sessions.js';


/** Times are milliseconds since the epoch; flags are 0/1 integers, the same on both engines. */
export interface UsersTable {
  user_id: string;
  password_hash: string | null;
  created_ts: number;
  deactivated: number;
  is_guest: number;
  displayname: string | null;
  avatar_url: string | null;
  /** 1 for a server admin, 1 for an account erased at deactivation (migration 0012). */
  admin: Generated<number>;
  erased: Generated<number>;
}

export interface DevicesTable {
  user_id: string;
  device_id: string;
  display_name: string | null;
  last_seen_ts: number | null;
  last_seen_ip: string | null;
  created_ts: number;
}

export interface AccessTokensTable {
  token_hash: string;
  user_id: string;
  device_id: string;
  created_ts: number;
  expires_ts: number | null;
  refresh_token_hash: string | null;
  /** The refresh token this token's pair replaced; revoked when this token is first used. */
  prev_refresh_hash: string | null;
}

export interface RefreshTokensTable {
  token_hash: string;
  user_id: string;
  device_id: string;
  created_ts: number;
  expires_ts: number | null;
  /** The refresh token this one replaced; revoked when this one is first used. */
  prev_token_hash: string | null;
}

export interface UiaSessionsTable {
  session_id: string;
  operation: string;
  user_id: string | null;
  created_ts: number;
  expires_ts: number;
  /** JSON object: stage type -> what that stage established. */
  results: string;
  /** JSON object: the request's parameters (its body without `auth` and secrets); null is {}. */
  params: string | null;
  /** The hash of a password the request carried, kept only until the session completes. */
  secret_hash: string | null;
  /** When a request completed the session and was let through (at most one ever is). */
  completed_ts: number | null;
  /** JSON: what the operation answered, for a client that retries the completing request. */
  result: string | null;
}

export interface UserThreepidsTable {
  medium: string;
  address: string;
  user_id: string;
  validated_ts: number;
  added_ts: number;
}

export interface RateLimitsTable {
  key: string;
  /** Generic cell rate algorithm: the theoretical arrival time of the next request, in ms. */
  tat: number;
}

export interface Database extends ClientStateTables, RoomTables, RelationTables, AdminTables, MediaTables, EphemeralTables, PushTables, DirectoryTables, SearchTables, ReportTables, ProfileTables {
  users: UsersTable;
  devices: DevicesTable;
  access_tokens: AccessTokensTable;
  refresh_tokens: RefreshTokensTable;
  uia_sessions: UiaSessionsTable;
  user_threepids: UserThreepidsTable;
  user_threepid_id_server: UserThreepidIdServerTable;
  rate_limits: RateLimitsTable;
  outbox: OutboxTable;
  threepid_validation_sessions: ThreepidValidationSessionsTable;
  room_upgrades: RoomUpgradesTable;
}
