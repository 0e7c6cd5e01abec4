import { MatrixError, badJson, invalidParam, missingParam, notFound } from '../../errors.js';
import type { BackupKeyRow, BackupVersionRow } from '../../storage/key-backup.js';
import type { Store } from '../../storage/index.js';
import { isObject, type JsonObject } from '../../validate.js';

export const BACKUP_ALGORITHMS = ['m.megolm_backup.v1.curve25519-aes-sha2'];

interface SessionData {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  session_data: JsonObject;
}

function checkSession(value: unknown, where: string): SessionData {
  if (!isObject(value)) throw badJson(`'${where}' must be an object`);
  for (const field of ['first_message_index', 'forwarded_count'] as const) {
    if (value[field] === undefined) throw missingParam(`${where}.${field}`);
    if (typeof value[field] !== 'number' || !Number.isSafeInteger(value[field]) || (value[field] as number) < 0) throw badJson(`'${where}.${field}' must be a non-negative integer`);
  }
  if (typeof value.is_verified !== 'boolean') throw value.is_verified === undefined ? missingParam(`${where}.is_verified`) : badJson(`'${where}.is_verified' must be a boolean`);
  if (!isObject(value.session_data)) throw value.session_data === undefined ? missingParam(`${where}.session_data`) : badJson(`'${where}.session_data' must be an object`);
  return value as unknown as SessionData;
}

function checkSessions(value: unknown, where: string): Record<string, SessionData> {
  if (!isObject(value)) throw value === undefined ? missingParam(`${where}.sessions`) : badJson(`'${where}' must be an object`);
  const sessions = value.sessions;
  if (sessions === undefined) throw missingParam(`${where}.sessions`);
  if (!isObject(sessions)) throw badJson(`'${where}.sessions' must be an object`);
  for (const [id, s] of Object.entries(sessions)) checkSession(s, `${where}.sessions.${id}`);
  return sessions as Record<string, SessionData>;
}

/** The spec's rule for which of two backed-up copies of a session key to keep. */
function better(fresh: SessionData, old: BackupKeyRow): boolean {
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

  private checkAlgorithm(body: JsonObject): { algorithm: string; authData: string } {
    if (body.algorithm === undefined) throw missingParam('algorithm');
    if (typeof body.algorithm !== 'string' || !BACKUP_ALGORITHMS.includes(body.algorithm)) throw invalidParam(`Unsupported backup algorithm`);
    if (body.auth_data === undefined) throw missingParam('auth_data');
    if (!isObject(body.auth_data)) throw badJson("'auth_data' must be an object");
    return { algorithm: body.algorithm, authData: JSON.stringify(body.auth_data) };
  }

  async create(userId: string, body: JsonObject): Promise<{ version: string }> {
    const { algorithm, authData } = this.checkAlgorithm(body);
    const version = await this.store.keyBackup.create(userId, algorithm, authData);
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

  async updateVersion(userId: string, versionParam: string, body: JsonObject): Promise<void> {
    const { algorithm, authData } = this.checkAlgorithm(body);
    const version = this.parseVersion(versionParam);
    const repo = this.store.keyBackup;
    const row = version === undefined ? undefined : await repo.get(userId, version);
    if (!row) throw notFound('Unknown backup version');
    if (body.version !== undefined && body.version !== versionParam) throw invalidParam('The version in the body does not match the version in the path');
    if (algorithm !== row.algorithm) throw invalidParam('Algorithm does not match');
    await repo.setAuthData(userId, row.version, authData);
  }

  async deleteVersion(userId: string, versionParam: string): Promise<void> {
    const version = this.parseVersion(versionParam);
    const deleted = version !== undefined && (await this.store.transaction((tx) => tx.keyBackup.delete(userId, version)));
    if (!deleted) throw notFound('Unknown backup version');
  }

  /** The backup a key request names: it must exist, and writes must go to the current one. */
  private async target(userId: string, versionParam: string | undefined, forWrite: boolean, store: Store = this.store): Promise<BackupVersionRow> {
    if (versionParam === undefined) throw missingParam('version');
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
  async putKeys(userId: string, versionParam: string | undefined, rooms: Record<string, Record<string, SessionData>>) {
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

  putAll(userId: string, version: string | undefined, body: JsonObject) {
    if (body.rooms === undefined) throw missingParam('rooms');
    if (!isObject(body.rooms)) throw badJson("'rooms' must be an object");
    const rooms: Record<string, Record<string, SessionData>> = {};
    for (const [roomId, room] of Object.entries(body.rooms)) rooms[roomId] = checkSessions(room, `rooms.${roomId}`);
    return this.putKeys(userId, version, rooms);
  }

  putRoom(userId: string, version: string | undefined, roomId: string, body: JsonObject) {
    return this.putKeys(userId, version, { [roomId]: checkSessions(body, 'body') });
  }

  putSession(userId: string, version: string | undefined, roomId: string, sessionId: string, body: JsonObject) {
    return this.putKeys(userId, version, { [roomId]: { [sessionId]: checkSession(body, 'body') } });
  }

  async getKeys(userId: string, versionParam: string | undefined, roomId?: string, sessionId?: string): Promise<JsonObject> {
    const backup = await this.target(userId, versionParam, false);
    const rows = await this.store.keyBackup.keys(userId, backup.version, roomId, sessionId);
    if (sessionId !== undefined) {
      if (rows.length === 0) throw notFound('No room key found');
      return keyView(rows[0]!);
    }
    const rooms: Record<string, { sessions: JsonObject }> = {};
    for (const row of rows) (rooms[row.room_id] ??= { sessions: {} }).sessions[row.session_id] = keyView(row);
    if (roomId !== undefined) return rooms[roomId] ?? { sessions: {} };
    return { rooms };
  }

  async deleteKeys(userId: string, versionParam: string | undefined, roomId?: string, sessionId?: string) {
    return this.store.transaction(async (tx) => {
      const backup = await this.target(userId, versionParam, false, tx);
      const repo = tx.keyBackup;
      const deleted = await repo.deleteKeys(userId, backup.version, roomId, sessionId);
      if (deleted > 0) await repo.bumpEtag(userId, backup.version);
      return { etag: String(backup.etag + (deleted > 0 ? 1 : 0)), count: await repo.count(userId, backup.version) };
    });
  }
}
