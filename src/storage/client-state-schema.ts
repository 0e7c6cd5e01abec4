/**
 * Tables of what a client keeps on the server between syncs: account data, to-device messages,
 * device keys, filters, push rules, key backups, presence. JSON documents are stored as text.
 */

/** The one row holding the global stream head: the position of the latest change that sync reports. */
export interface StreamHeadTable {
  id: number;
  position: number;
}

/** How a user's positions from before the global stream (migration 0008) map onto it. */
export interface LegacyStreamOffsetsTable {
  user_id: string;
  stream_offset: number;
  /** The user's own stream head then: the furthest position a token of theirs could name. */
  legacy_head: number;
}

export interface AccountDataTable {
  user_id: string;
  /** '' for global account data. */
  room_id: string;
  type: string;
  content: string;
  stream_pos: number;
}

export interface ToDeviceInboxTable {
  user_id: string;
  device_id: string;
  stream_pos: number;
  sender: string;
  type: string;
  content: string;
}

/** Transaction IDs of sendToDevice requests already handled, per sending device. */
export interface ToDeviceTxnsTable {
  user_id: string;
  device_id: string;
  txn_id: string;
  created_ts: number;
}

/** A change to `changed_user_id`'s devices, in the stream of `user_id` (who is told about it). */
export interface DeviceListChangesTable {
  user_id: string;
  stream_pos: number;
  changed_user_id: string;
}

export interface E2eDeviceKeysTable {
  user_id: string;
  device_id: string;
  key_json: string;
}

export interface E2eOneTimeKeysTable {
  user_id: string;
  device_id: string;
  algorithm: string;
  key_id: string;
  key_json: string;
}

export interface E2eFallbackKeysTable {
  user_id: string;
  device_id: string;
  algorithm: string;
  key_id: string;
  key_json: string;
  used: number;
}

export interface E2eCrossSigningKeysTable {
  user_id: string;
  /** master, self_signing or user_signing */
  key_type: string;
  key_json: string;
}

/** A signature uploaded through /keys/signatures/upload, kept apart from the signed key. */
export interface E2eSignaturesTable {
  signer_user_id: string;
  signer_key_id: string;
  target_user_id: string;
  /** A device ID, or the public key of a cross-signing key. */
  target_key_id: string;
  signature: string;
}

export interface FiltersTable {
  user_id: string;
  filter_id: number;
  filter_json: string;
}

/** A user-defined push rule. */
export interface PushRulesTable {
  user_id: string;
  kind: string;
  rule_id: string;
  /** Order within the kind: lower is more important. */
  priority: number;
  conditions: string | null;
  pattern: string | null;
  actions: string;
  enabled: number;
}

/** A user's changes to a server-default push rule. */
export interface PushRuleOverridesTable {
  user_id: string;
  kind: string;
  rule_id: string;
  enabled: number | null;
  actions: string | null;
}

export interface KeyBackupVersionsTable {
  user_id: string;
  version: number;
  algorithm: string;
  auth_data: string;
  etag: number;
  deleted: number;
}

export interface KeyBackupKeysTable {
  user_id: string;
  version: number;
  room_id: string;
  session_id: string;
  first_message_index: number;
  forwarded_count: number;
  is_verified: number;
  session_data: string;
}

export interface PresenceTable {
  user_id: string;
  state: string;
  status_msg: string | null;
  last_active_ts: number;
  /** The position of the latest change of state or status message in the user's stream. */
  stream_pos: number;
}

export interface ClientStateTables {
  stream_head: StreamHeadTable;
  legacy_stream_offsets: LegacyStreamOffsetsTable;
  account_data: AccountDataTable;
  to_device_inbox: ToDeviceInboxTable;
  to_device_txns: ToDeviceTxnsTable;
  device_list_changes: DeviceListChangesTable;
  e2e_device_keys: E2eDeviceKeysTable;
  e2e_one_time_keys: E2eOneTimeKeysTable;
  e2e_fallback_keys: E2eFallbackKeysTable;
  e2e_cross_signing_keys: E2eCrossSigningKeysTable;
  e2e_signatures: E2eSignaturesTable;
  filters: FiltersTable;
  push_rules: PushRulesTable;
  push_rule_overrides: PushRuleOverridesTable;
  key_backup_versions: KeyBackupVersionsTable;
  key_backup_keys: KeyBackupKeysTable;
  presence: PresenceTable;
}
