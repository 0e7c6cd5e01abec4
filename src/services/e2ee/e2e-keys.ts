import { MatrixError, invalidParam, missingParam } from '../../errors.js';
import type { OneTimeKey } from '../../storage/e2e-keys.js';
import type { Store } from '../../storage/index.js';
import { dictionary, isObject, type JsonObject } from '../../validate.js';
import type { Requester } from '../devices.js';
import { WithAuth } from '../../http/common-schemas.js';
import { parseBody } from '../../http/parse.js';
import { Operation, unreadParams, type UiaService } from '../uia.js';
import { signedPart, verifyEd25519 } from './signing.js';
import type { StreamTx, StreamWriter } from '../sync/stream-writer.js';
import { tokenPosition } from '../sync/sync-token.js';
import { RoomMemberships } from '../sync/room-memberships.js';
import { serverNameOf } from '../user-ids.js';

export const CROSS_SIGNING_TYPES = { master_key: 'master', self_signing_key: 'self_signing', user_signing_key: 'user_signing' } as const;
const KEY_ID = /^([^:]+):(.+)$/;

/** user ID -> key ID -> signature. */
export type Signatures = Record<string, Record<string, string>>;

/** A device's keys as its device uploads them (signed JSON: stored as sent, less `unsigned`). */
export interface DeviceKeysInput {
  user_id: string;
  device_id: string;
  algorithms: string[];
  keys: Record<string, string>;
  signatures: Signatures;
  [field: string]: unknown;
}

/** "algorithm:key_id" -> a key string or a signed key object. */
export type KeyMap = Record<string, string | { key: string; signatures?: Signatures; [field: string]: unknown }>;

export interface KeysUpload {
  device_keys?: DeviceKeysInput;
  one_time_keys?: KeyMap;
  fallback_keys?: KeyMap;
}

/** A cross-signing key (signed JSON, stored as sent). */
export interface CrossSigningKey {
  user_id: string;
  usage: string[];
  keys: Record<string, string>;
  signatures?: Signatures;
  [field: string]: unknown;
}

/** POST /keys/device_signing/upload; `auth` is for the UIA that replacing keys needs. */
// A type, not an interface: it is also the UIA's record of the request's parameters (a JSON object).
export type CrossSigningUpload = { [field in keyof typeof CROSS_SIGNING_TYPES]?: CrossSigningKey } & { auth?: unknown };

function isStringMap(value: unknown): value is Record<string, string> {
  return isObject(value) && Object.values(value).every((v) => typeof v === 'string');
}

/** The rows of a one_time_keys or fallback_keys map; the key IDs were checked at the edge. */
function keyRows(map: KeyMap = {}): OneTimeKey[] {
  return Object.entries(map).map(([id, key]) => {
    const [, algorithm, keyId] = KEY_ID.exec(id)!;
    return { algorithm: algorithm!, key_id: keyId!, key_json: JSON.stringify(key) };
  });
}

/** The one cross-signing public key in a key object's `keys`. */
function publicKeyOf(key: JsonObject): string {
  return Object.values(key.keys as Record<string, string>)[0]!;
}

/** End-to-end keys: storage and routing only. The server never holds a private key or decrypts. */
export class E2eKeyService {
  private readonly memberships: RoomMemberships;

  constructor(
    private readonly store: Store,
    private readonly writer: StreamWriter,
    private readonly uia: UiaService,
    private readonly serverName: string,
  ) {
    this.memberships = new RoomMemberships(store);
  }

  private isLocal(userId: string): boolean {
    return serverNameOf(userId) === this.serverName;
  }

  async counts(userId: string, deviceId: string): Promise<Record<string, number>> {
    const counts = await this.store.keys.oneTimeKeyCounts(userId, deviceId);
    return { signed_curve25519: 0, ...counts };
  }

  async upload(requester: Requester, input: KeysUpload): Promise<{ one_time_key_counts: Record<string, number> }> {
    const { userId, deviceId } = requester;
    let deviceKeys: string | undefined;
    if (input.device_keys !== undefined) {
      const { unsigned: _unsigned, ...signed } = input.device_keys;
      if (signed.user_id !== userId || signed.device_id !== deviceId) throw invalidParam("'device_keys' must be for the device making the request");
      deviceKeys = JSON.stringify(signed);
    }
    const oneTimeKeys = keyRows(input.one_time_keys);
    const fallbackKeys = keyRows(input.fallback_keys);

    await this.writer.write(async (tx) => {
      const keys = tx.store.keys;
      if (deviceKeys !== undefined && (await keys.getDeviceKeys(userId, deviceId)) !== deviceKeys) {
        await this.ownChange(tx, userId);
        await keys.setDeviceKeys(userId, deviceId, deviceKeys);
      }
      for (const old of await keys.existingOneTimeKeys(userId, deviceId, oneTimeKeys)) {
        const fresh = oneTimeKeys.find((k) => k.algorithm === old.algorithm && k.key_id === old.key_id);
        if (fresh && fresh.key_json !== old.key_json) throw invalidParam(`One-time key ${old.algorithm}:${old.key_id} already exists with different content`);
      }
      await keys.addOneTimeKeys(userId, deviceId, oneTimeKeys);
      for (const key of fallbackKeys) await keys.setFallbackKey(userId, deviceId, key);
    });
    return { one_time_key_counts: await this.counts(userId, deviceId) };
  }

  /** `wanted` maps user ID -> device IDs (none: all of the user's devices). */
  async query(requester: Requester, wanted: Record<string, string[]>): Promise<JsonObject> {
    const repo = this.store.keys;
    const deviceKeys = dictionary<unknown>();
    const masterKeys = dictionary<unknown>();
    const selfSigningKeys = dictionary<unknown>();
    const userSigningKeys = dictionary<unknown>();
    const failures = dictionary<unknown>();
    for (const [userId, devices] of Object.entries(wanted)) {
      if (!this.isLocal(userId)) {
        failures[serverNameOf(userId)] = { errcode: 'M_UNAVAILABLE', error: 'This server does not federate' };
        continue;
      }
      const signatures = await repo.signaturesOn(userId, requester.userId);
      const withSignatures = (json: string, targetKeyId: string): JsonObject => {
        const key = JSON.parse(json) as JsonObject;
        const added = signatures.filter((s) => s.target_key_id === targetKeyId);
        // A key uploaded without signatures is served as uploaded (sytest compares it exactly).
        if (added.length === 0) return key;
        const sigs = (isObject(key.signatures) ? key.signatures : {}) as Record<string, Record<string, string>>;
        for (const s of added) sigs[s.signer_user_id] = { ...sigs[s.signer_user_id], [s.signer_key_id]: s.signature };
        key.signatures = sigs;
        return key;
      };
      const devicesOut = dictionary<unknown>();
      for (const row of await repo.listDeviceKeys(userId, devices)) {
        const key = withSignatures(row.key_json, row.device_id);
        // Always present, as Synapse sends it and sytest expects; the spec makes it optional.
        key.unsigned = row.display_name !== null ? { device_display_name: row.display_name } : {};
        devicesOut[row.device_id] = key;
      }
      deviceKeys[userId] = devicesOut;
      const cross = await repo.crossSigningKeys(userId);
      if (cross.master) masterKeys[userId] = withSignatures(cross.master, publicKeyOf(JSON.parse(cross.master) as JsonObject));
      if (cross.self_signing) selfSigningKeys[userId] = JSON.parse(cross.self_signing);
      if (cross.user_signing && userId === requester.userId) userSigningKeys[userId] = JSON.parse(cross.user_signing);
    }
    return { device_keys: deviceKeys, master_keys: masterKeys, self_signing_keys: selfSigningKeys, user_signing_keys: userSigningKeys, failures };
  }

  /** `wanted` maps user ID -> device ID -> algorithm. */
  async claim(wanted: Record<string, Record<string, string>>): Promise<JsonObject> {
    const claimed = dictionary<unknown>();
    const failures = dictionary<unknown>();
    const repo = this.store.keys;
    for (const [userId, devices] of Object.entries(wanted)) {
      if (!this.isLocal(userId)) {
        failures[serverNameOf(userId)] = { errcode: 'M_UNAVAILABLE', error: 'This server does not federate' };
        continue;
      }
      const perUser = dictionary<unknown>();
      for (const [deviceId, algorithm] of Object.entries(devices)) {
        const key = (await repo.takeOneTimeKey(userId, deviceId, algorithm)) ?? (await repo.useFallbackKey(userId, deviceId, algorithm));
        if (key) perUser[deviceId] = { [`${key.algorithm}:${key.key_id}`]: JSON.parse(key.key_json) };
      }
      if (Object.keys(perUser).length > 0) claimed[userId] = perUser;
    }
    return { one_time_keys: claimed, failures };
  }

  async changes(userId: string, from: string, to: string): Promise<{ changed: string[]; left: string[] }> {
    const streams = this.store.streams;
    const after = await tokenPosition(from, userId, streams);
    const upto = await tokenPosition(to, userId, streams);
    if (after === undefined || upto === undefined) throw invalidParam('Invalid stream token');
    if (upto <= after) return { changed: [], left: [] };
    // As /sync reports them: key changes of the user and room-mates, and whom sharing rooms brought or took.
    const rooms = await this.memberships.deviceListChanges(userId, after, upto);
    const left = new Set(rooms.left);
    const changed = [...new Set([...(await this.store.keys.deviceListChanges(userId, after, upto)), ...rooms.changed])].filter((u) => !left.has(u));
    return { changed, left: rooms.left };
  }

  async uploadCrossSigning(requester: Requester, body: CrossSigningUpload, ip: string): Promise<void> {
    const userId = requester.userId;
    const uploaded: [string, CrossSigningKey][] = [];
    for (const [field, type] of Object.entries(CROSS_SIGNING_TYPES)) {
      const key = body[field as keyof typeof CROSS_SIGNING_TYPES];
      if (key === undefined) continue;
      if (key.user_id !== userId) throw invalidParam(`'${field}.user_id' must be your user ID`);
      uploaded.push([type, key]);
    }
    const existing = await this.store.keys.crossSigningKeys(userId);
    const master = uploaded.find(([type]) => type === 'master')?.[1] ?? (existing.master ? (JSON.parse(existing.master) as JsonObject) : undefined);
    if (uploaded.length > 0 && !master) throw missingParam('master_key');
    for (const [type, key] of uploaded) {
      if (type === 'master') continue;
      const masterKey = publicKeyOf(master!);
      const signature = key.signatures?.[userId]?.[`ed25519:${masterKey}`];
      if (signature === undefined || !verifyEd25519(key, masterKey, signature)) {
        throw new MatrixError(400, 'M_INVALID_SIGNATURE', `The ${type} key must be signed by the master key`);
      }
    }
    const replaces = uploaded.some(([type, key]) => existing[type] !== undefined && existing[type] !== JSON.stringify(key));
    // The first upload needs no re-authentication (spec v1.11); replacing keys does.
    const changed = uploaded.filter(([type, key]) => existing[type] !== JSON.stringify(key));
    const write = async () => {
      if (changed.length === 0) return;
      await this.writer.write(async (tx) => {
        for (const [type, key] of changed) await tx.store.keys.setCrossSigningKey(userId, type, JSON.stringify(key));
        await this.ownChange(tx, userId);
      });
    };
    if (!replaces) return write();
    // A retry of the same upload gets the recorded answer: it was stored when the session completed.
    const { auth } = parseBody(WithAuth, body);
    await this.uia.perform(
      { auth, operation: Operation.uploadCrossSigningKeys, userId, flows: [['m.login.password']], ip, params: unreadParams(body) },
      {
        run: async () => {
          await write();
          return {};
        },
      },
    );
  }

  /**
   * Stores signatures of keys: the signer's own devices and cross-signing keys, or another user's
   * master key. Each signature is checked against the signer's key; the signed object must be the
   * key the server holds.
   */
  /** `signed` maps user ID -> key ID (a device ID or a cross-signing public key) -> the signed key object. */
  async uploadSignatures(requester: Requester, keysByUser: Record<string, Record<string, JsonObject>>): Promise<{ failures: JsonObject }> {
    const signer = requester.userId;
    const failures = dictionary<JsonObject>();
    const fail = (userId: string, keyId: string, errcode: string, error: string) => {
      failures[userId] = { ...failures[userId], [keyId]: { errcode, error } };
    };
    const accepted: { target_user_id: string; target_key_id: string; signer_key_id: string; signature: string }[] = [];
    const repo = this.store.keys;
    const parsedKeys = (map: Record<string, string>) => Object.fromEntries(Object.entries(map).map(([type, json]) => [type, JSON.parse(json) as JsonObject]));
    const signerCross = parsedKeys(await repo.crossSigningKeys(signer));
    const signerKey = async (keyId: string): Promise<string | undefined> => {
      const match = /^ed25519:(.+)$/.exec(keyId);
      if (!match) return undefined;
      if (Object.values(signerCross).some((k) => publicKeyOf(k) === match[1])) return match[1];
      const device = await repo.getDeviceKeys(signer, match[1]!);
      return device ? ((JSON.parse(device) as { keys?: Record<string, string> }).keys?.[keyId] ?? undefined) : undefined;
    };
    for (const [userId, objects] of Object.entries(keysByUser)) {
      const cross = this.isLocal(userId) ? parsedKeys(await repo.crossSigningKeys(userId)) : {};
      for (const [keyId, signed] of Object.entries(objects)) {
        let stored: JsonObject | undefined;
        if (userId === signer) {
          const device = await repo.getDeviceKeys(userId, keyId);
          stored = device ? (JSON.parse(device) as JsonObject) : Object.values(cross).find((k) => publicKeyOf(k) === keyId);
        } else if (cross.master && publicKeyOf(cross.master) === keyId) {
          stored = cross.master;
        }
        if (!stored) {
          fail(userId, keyId, 'M_NOT_FOUND', 'No such key');
          continue;
        }
        if (!isObject(signed) || !isObject(signed.signatures) || !isStringMap(signed.signatures[signer])) {
          fail(userId, keyId, 'M_INVALID_SIGNATURE', `The object carries no signatures by ${signer}`);
          continue;
        }
        if (signedPart(signed) !== signedPart(stored)) {
          fail(userId, keyId, 'M_INVALID_SIGNATURE', 'The signed object does not match the stored key');
          continue;
        }
        const mine = Object.entries(signed.signatures[signer] as Record<string, string>);
        const checked = await Promise.all(mine.map(async ([signerKeyId, signature]) => {
          const publicKey = await signerKey(signerKeyId);
          return publicKey !== undefined && verifyEd25519(signed, publicKey, signature);
        }));
        if (checked.some((ok) => !ok)) {
          fail(userId, keyId, 'M_INVALID_SIGNATURE', 'A signature does not verify');
          continue;
        }
        for (const [signerKeyId, signature] of mine) accepted.push({ target_user_id: userId, target_key_id: keyId, signer_key_id: signerKeyId, signature });
      }
    }
    if (accepted.length > 0) {
      await this.writer.write(async (tx) => {
        const observers = [...new Set([signer, ...accepted.map((a) => a.target_user_id).filter((u) => this.isLocal(u))])].sort();
        const positions = new Map<string, number>();
        for (const observer of observers) positions.set(observer, await tx.position(observer));
        for (const a of accepted) {
          await tx.store.keys.addSignature({ signer_user_id: signer, ...a });
          const target = this.isLocal(a.target_user_id) ? a.target_user_id : signer;
          await tx.store.keys.addDeviceListChange(target, positions.get(target)!, a.target_user_id);
          if (target !== signer) await tx.store.keys.addDeviceListChange(signer, positions.get(signer)!, a.target_user_id);
        }
        // Signatures of the signer's own devices and keys: everyone sharing a room with them re-checks.
        if (accepted.some((a) => a.target_user_id === signer)) await this.ownChange(tx, signer);
      });
    }
    return { failures };
  }

  /**
   * Records that the user's own devices or keys changed at `position`, for the user and for every
   * user sharing a room with them (their clients track the user's devices), and returns them all:
   * whose syncs must hear of it. Called after the position is taken, so that every membership
   * committed before it is seen: a user who joins later learns of the user's devices by the join.
   */
  private async recordOwnChange(work: Store, userId: string, position: number): Promise<string[]> {
    const observers = [...new Set([userId, ...(await work.rooms.roomMates(userId))])];
    await work.keys.addDeviceListChanges(observers, position, userId);
    return observers;
  }

  /** recordOwnChange in a stream write: every observer's sync is woken after the commit. */
  private async ownChange(tx: StreamTx, userId: string): Promise<void> {
    const position = await tx.position(userId);
    for (const observer of await this.recordOwnChange(tx.store, userId, position)) await tx.position(observer);
  }

  /** Part of creating a device (in the creating unit of work): the user's device list changed. Returns whom to wake. */
  async onDeviceCreated(work: Store, userId: string, position: number): Promise<string[]> {
    return this.recordOwnChange(work, userId, position);
  }

  /** Part of deleting devices (in the deleting unit of work): their keys go, and the user's device list changed. Returns whom to wake. */
  async onDevicesDeleted(work: Store, userId: string, deviceIds: readonly string[], position: number): Promise<string[]> {
    await work.keys.deleteForDevices(userId, deviceIds);
    return this.recordOwnChange(work, userId, position);
  }
}

