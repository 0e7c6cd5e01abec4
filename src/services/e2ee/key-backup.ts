import { MatrixError, invalidParam, notFound } from '../../errors.js';
import type { BackupKeyRow, BackupVersionRow } from '../../storage/key-backup.js';
import type { Store } from '../../storage/index.js';
import { dictionary, type JsonObject } from '../../validate.js';
import { isRoomId } from '../user-ids.js';

export const BACKUP_ALGORITHMS = ['m.megolm_backup.v1.curve25519-aes-sha2'] as const;

/** The spec's KeyBackupData: one session's key, encrypted by the client (session_data is opaque). */
export interface KeyBackupData {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  session_data: JsonObject;
}

/** The spec's RoomKeyBackup: a room's session keys by session ID. */
export interface RoomKeyBackup {
  sessions: Record<string, KeyBackupData>;
}

/** A backup version's algorithm and public part, as created or updated. */
export interface BackupVersionInput {
  algorithm: string;
  auth_data: JsonObject;
  /** On an update: when given, must be the version in the path. */
  version?: string;
}

/** Megolm session IDs are 43 characters of base64; the spec sets no grammar, so only a bound. */
const MAX_SESSION_ID_LENGTH = 255;

function checkRoomId(roomId: string): string {
  if (!isRoomId(roomId)) throw invalidParam(`Not a room ID: ${JSON.stringify(roomId.slice(0, 300))}`);
  return roomId;
}

function checkSessionId(sessionId: string): string {
  if (sessionId === '' || sessionId.length > MAX_SESSION_ID_LENGTH) throw invalidParam(`Session IDs must be 1 to ${MAX_SESSION_ID_LENGTH} characters long`);
  return sessionId;
}

/** A room's sessions keyed by checked session IDs, in a map without a prototype. */
function checkedSessions(sessions: Record<string, KeyBackupData>): Record<string, KeyBackupData> {
  const out = dictionary<KeyBackupData>();
  for (const [sessionId, data] of Object.entries(sessions)) out[checkSessionId(sessionId)] = data;
  return out;
}

/** The spec's rule for which of two backed-up copies of a session key to keep. */
function better(fresh: KeyBackupData, old: BackupKeyRow): boolean {
  if (fresh.is_verified !== (old.is_verified === 1)) return fresh.is_verified;
  if (fresh.first_message_index !== old.first_message_index) return fresh.first_message_index < old.first_message_index;
  return fresh.forwarded_count < old.forwarded_count;
}

const keyView = (row: BackupKeyRow) => ({
  first_message_index: row.first_message_index,
  forwarded_count: row.forwarded_count,
  is_verified: row.is_verified === 1,
  session_data: JSON.parse(row.session_data) as JsonObject,
});

/** Server-side backups of room keys (encrypted by the client; the server stores them opaque). */
export class KeyBackupService {
  constructor(private readonly store: Store) {}

  private parseVersion(version: string | undefined): number | undefined {
    return version !== undefined && /^\d{1,15}$/.test(version) ? Number(version) : undefined;
  }

  async create(userId: string, input: BackupVersionInput): Promise<{ version: string }> {
    const version = await this.store.keyBackup.create(userId, input.algorithm, JSON.stringify(input.auth_data));
    return { version: String(version) };
  }

  private async info(userId: string, row: BackupVersionRow) {
    return {
      algorithm: row.algorithm,
      auth_data: JSON.parse(row.auth_data) as JsonObject,
      count: await this.store.keyBackup.count(userId, row.version),
      etag: String(row.etag),
      version: String(row.version),
    };
  }

  async getVersion(userId: string, versionParam?: string) {
    const repo = this.store.keyBackup;
    let row: BackupVersionRow | undefined;
    if (versionParam === undefined) row = await repo.current(userId);
    else {
      const version = this.parseVersion(versionParam);
      row = version === undefined ? undefined : await repo.get(userId, version);
    }
    if (!row) throw notFound(versionParam === undefined ? 'No current backup version' : 'Unknown backup version');
    return this.info(userId, row);
  }

  async updateVersion(userId: string, versionParam: string, input: BackupVersionInput): Promise<void> {
    const { algorithm } = input;
    const version = this.parseVersion(versionParam);
    const repo = this.store.keyBackup;
    const row = version === undefined ? undefined : await repo.get(userId, version);
    if (!row) throw notFound('Unknown backup version');
    if (input.version !== undefined && input.version !== versionParam) throw invalidParam('The version in the body does not match the version in the path');
    if (algorithm !== row.algorithm) throw invalidParam('Algorithm does not match');
    await repo.setAuthData(userId, row.version, JSON.stringify(input.auth_data));
  }

  async deleteVersion(userId: string, versionParam: string): Promise<void> {
    const version = this.parseVersion(versionParam);
    const deleted = version !== undefined && (await this.store.transaction((tx) => tx.keyBackup.delete(userId, version)));
    if (!deleted) throw notFound('Unknown backup version');
  }

  /** The backup a key request names: it must exist, and writes must go to the current one. */
  private async target(userId: string, versionParam: string, forWrite: boolean, store: Store = this.store): Promise<BackupVersionRow> {
    const version = this.parseVersion(versionParam);
    const repo = store.keyBackup;
    if (forWrite) {
      const current = await repo.current(userId);
      if (!current) throw notFound('Unknown backup version');
      if (current.version !== version) {
        throw new MatrixError(403, 'M_WRONG_ROOM_KEYS_VERSION', 'Wrong backup version.', { current_version: String(current.version) });
      }
      return current;
    }
    const row = version === undefined ? undefined : await repo.get(userId, version);
    if (!row) throw notFound('Unknown backup version');
    return row;
  }

  /** Stores keys: `rooms` maps room ID -> session ID -> key data. */
  private async putKeys(userId: string, versionParam: string, rooms: Record<string, Record<string, KeyBackupData>>) {
    return this.store.transaction(async (tx) => {
      const backup = await this.target(userId, versionParam, true, tx);
      const repo = tx.keyBackup;
      let changed = false;
      for (const [roomId, sessions] of Object.entries(rooms)) {
        const ids = Object.keys(sessions);
        // One read per room, not per session (uploads carry hundreds of sessions); one session: just it.
        const stored = await repo.keys(userId, backup.version, roomId, ids.length === 1 ? ids[0] : undefined);
        const oldOf = new Map(stored.map((row) => [row.session_id, row]));
        for (const [sessionId, data] of Object.entries(sessions)) {
          const old = oldOf.get(sessionId);
          if (old && !better(data, old)) continue;
          await repo.put({
            user_id: userId,
            version: backup.version,
            room_id: roomId,
            session_id: sessionId,
            first_message_index: data.first_message_index,
            forwarded_count: data.forwarded_count,
            is_verified: data.is_verified ? 1 : 0,
            session_data: JSON.stringify(data.session_data),
          });
          changed = true;
        }
      }
      if (changed) await repo.bumpEtag(userId, backup.version);
      return { etag: String(backup.etag + (changed ? 1 : 0)), count: await repo.count(userId, backup.version) };
    });
  }

  putAll(userId: string, version: string, rooms: Record<string, RoomKeyBackup>) {
    const out = dictionary<Record<string, KeyBackupData>>();
    for (const [roomId, room] of Object.entries(rooms)) out[checkRoomId(roomId)] = checkedSessions(room.sessions);
    return this.putKeys(userId, version, out);
  }

  putRoom(userId: string, version: string, roomId: string, room: RoomKeyBackup) {
    return this.putKeys(userId, version, { [checkRoomId(roomId)]: checkedSessions(room.sessions) });
  }

  putSession(userId: string, version: string, roomId: string, sessionId: string, data: KeyBackupData) {
    return this.putKeys(userId, version, { [checkRoomId(roomId)]: { [checkSessionId(sessionId)]: data } });
  }

  async getKeys(userId: string, versionParam: string, roomId?: string, sessionId?: string): Promise<JsonObject> {
    const backup = await this.target(userId, versionParam, false);
    const rows = await this.store.keyBackup.keys(userId, backup.version, roomId, sessionId);
    if (sessionId !== undefined) {
      if (rows.length === 0) throw notFound('No room key found');
      return keyView(rows[0]!);
    }
    // Reads take any room ID, so that keys stored before room IDs were checked can still be read and deleted.
    const rooms = dictionary<{ sessions: JsonObject }>();
    for (const row of rows) (rooms[row.room_id] ??= { sessions: dictionary() }).sessions[row.session_id] = keyView(row);
    if (roomId !== undefined) return rooms[roomId] ?? { sessions: {} };
    return { rooms };
  }

  async deleteKeys(userId: string, versionParam: string, roomId?: string, sessionId?: string) {
    return this.store.transaction(async (tx) => {
      const backup = await this.target(userId, versionParam, false, tx);
      const repo = tx.keyBackup;
      const deleted = await repo.deleteKeys(userId, backup.version, roomId, sessionId);
      if (deleted > 0) await repo.bumpEtag(userId, backup.version);
      return { etag: String(backup.etag + (deleted > 0 ? 1 : 0)), count: await repo.count(userId, backup.version) };
    });
  }
}
