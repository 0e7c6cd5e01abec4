import { MatrixError, badJson, invalidParam, missingParam } from '../../errors.js';
import type { OneTimeKey } from '../../storage/e2e-keys.js';
import type { Store } from '../../storage/index.js';
import { isObject, type JsonObject } from '../../validate.js';
import type { Requester } from '../devices.js';
import { uiaParams, type UiaService } from '../uia.js';
import { signedPart, verifyEd25519 } from './signing.js';
import type { StreamWriter } from '../sync/stream-writer.js';
import { tokenPosition } from '../sync/sync-token.js';
import { isUserId, serverNameOf } from '../user-ids.js';

const CROSS_SIGNING_TYPES = { master_key: 'master', self_signing_key: 'self_signing', user_signing_key: 'user_signing' } as const;
const KEY_ID = /^([^:]+):(.+)$/;

function isStringMap(value: unknown): value is Record<string, string> {
  return isObject(value) && Object.values(value).every((v) => typeof v === 'string');
}

function checkSignatures(value: unknown, name: string): void {
  if (value === undefined) return;
  if (!isObject(value) || !Object.values(value).every(isStringMap)) throw badJson(`'${name}.signatures' must map user IDs to key IDs to signatures`);
}

/** The keys of a one_time_keys or fallback_keys map: "algorithm:key_id" -> key string or signed key object. */
function checkKeyMap(value: unknown, name: string): OneTimeKey[] {
  if (value === undefined || value === null) return [];
  if (!isObject(value)) throw badJson(`'${name}' must be an object`);
  return Object.entries(value).map(([id, key]) => {
    const match = KEY_ID.exec(id);
    if (!match) throw invalidParam(`'${name}' key IDs must look like algorithm:key_id (got ${id})`);
    if (typeof key !== 'string') {
      if (!isObject(key) || typeof key.key !== 'string') throw badJson(`'${name}.${id}' must be a string or an object with a string 'key'`);
      checkSignatures(key.signatures, `${name}.${id}`);
    }
    return { algorithm: match[1]!, key_id: match[2]!, key_json: JSON.stringify(key) };
  });
}

/** The one cross-signing public key in a key object's `keys`. */
function publicKeyOf(key: JsonObject): string {
  return Object.values(key.keys as Record<string, string>)[0]!;
}

/** End-to-end keys: storage and routing only. The server never holds a private key or decrypts. */
export class E2eKeyService {
  constructor(
    private readonly store: Store,
    private readonly writer: StreamWriter,
    private readonly uia: UiaService,
    private readonly serverName: string,
  ) {}

  private isLocal(userId: string): boolean {
    return serverNameOf(userId) === this.serverName;
  }

  async counts(userId: string, deviceId: string): Promise<Record<string, number>> {
    const counts = await this.store.keys.oneTimeKeyCounts(userId, deviceId);
    return { signed_curve25519: 0, ...counts };
  }

  async upload(requester: Requester, body: JsonObject): Promise<{ one_time_key_counts: Record<string, number> }> {
    const { userId, deviceId } = requester;
    let deviceKeys: string | undefined;
    if (body.device_keys !== undefined && body.device_keys !== null) {
      const dk = body.device_keys;
      if (!isObject(dk)) throw badJson("'device_keys' must be an object");
      for (const field of ['user_id', 'device_id'] as const) if (typeof dk[field] !== 'string') throw missingParam(`device_keys.${field}`);
      if (!Array.isArray(dk.algorithms) || dk.algorithms.some((a) => typeof a !== 'string')) throw badJson("'device_keys.algorithms' must be an array of strings");
      if (!isStringMap(dk.keys)) throw badJson("'device_keys.keys' must map key IDs to keys");
      if (!isObject(dk.signatures)) throw missingParam('device_keys.signatures');
      checkSignatures(dk.signatures, 'device_keys');
      if (dk.user_id !== userId || dk.device_id !== deviceId) throw invalidParam("'device_keys' must be for the device making the request");
      const { unsigned: _unsigned, ...signed } = dk;
      deviceKeys = JSON.stringify(signed);
    }
    const oneTimeKeys = checkKeyMap(body.one_time_keys, 'one_time_keys');
    const fallbackKeys = checkKeyMap(body.fallback_keys, 'fallback_keys');

    await this.writer.write(async (tx) => {
      const keys = tx.store.keys;
      if (deviceKeys !== undefined && (await keys.getDeviceKeys(userId, deviceId)) !== deviceKeys) {
        await keys.addDeviceListChange(userId, await tx.position(userId), userId);
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

  async query(requester: Requester, body: JsonObject): Promise<JsonObject> {
    const wanted = body.device_keys;
    if (wanted === undefined || wanted === null) throw missingParam('device_keys');
    if (!isObject(wanted)) throw badJson("'device_keys' must be an object");
    const repo = this.store.keys;
    const deviceKeys: JsonObject = {};
    const masterKeys: JsonObject = {};
    const selfSigningKeys: JsonObject = {};
    const userSigningKeys: JsonObject = {};
    const failures: JsonObject = {};
    for (const [userId, devices] of Object.entries(wanted)) {
      if (!isUserId(userId)) throw invalidParam(`Not a user ID: ${userId}`);
      if (!Array.isArray(devices) || devices.some((d) => typeof d !== 'string')) throw badJson(`'device_keys.${userId}' must be an array of device IDs`);
      if (!this.isLocal(userId)) {
        failures[serverNameOf(userId)] = { errcode: 'M_UNAVAILABLE', error: 'This server does not federate' };
        continue;
      }
      const signatures = await repo.signaturesOn(userId, requester.userId);
      const withSignatures = (json: string, targetKeyId: string): JsonObject => {
        const key = JSON.parse(json) as JsonObject;
        const sigs = (isObject(key.signatures) ? key.signatures : {}) as Record<string, Record<string, string>>;
        for (const s of signatures.filter((s) => s.target_key_id === targetKeyId)) {
          sigs[s.signer_user_id] = { ...sigs[s.signer_user_id], [s.signer_key_id]: s.signature };
        }
        key.signatures = sigs;
        return key;
      };
      const devicesOut: JsonObject = {};
      for (const row of await repo.listDeviceKeys(userId, devices as string[])) {
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

  async claim(body: JsonObject): Promise<JsonObject> {
    const wanted = body.one_time_keys;
    if (wanted === undefined || wanted === null) throw missingParam('one_time_keys');
    if (!isObject(wanted)) throw badJson("'one_time_keys' must be an object");
    for (const [userId, devices] of Object.entries(wanted)) {
      if (!isStringMap(devices)) throw badJson(`'one_time_keys.${userId}' must map device IDs to algorithms`);
    }
    const claimed: JsonObject = {};
    const failures: JsonObject = {};
    const repo = this.store.keys;
    for (const [userId, devices] of Object.entries(wanted as Record<string, Record<string, string>>)) {
      if (!this.isLocal(userId)) {
        failures[serverNameOf(userId)] = { errcode: 'M_UNAVAILABLE', error: 'This server does not federate' };
        continue;
      }
      const perUser: JsonObject = {};
      for (const [deviceId, algorithm] of Object.entries(devices)) {
        const key = (await repo.takeOneTimeKey(userId, deviceId, algorithm)) ?? (await repo.useFallbackKey(userId, deviceId, algorithm));
        if (key) perUser[deviceId] = { [`${key.algorithm}:${key.key_id}`]: JSON.parse(key.key_json) };
      }
      if (Object.keys(perUser).length > 0) claimed[userId] = perUser;
    }
    return { one_time_keys: claimed, failures };
  }

  async changes(userId: string, from: string | undefined, to: string | undefined): Promise<{ changed: string[]; left: string[] }> {
    if (from === undefined) throw missingParam('from');
    if (to === undefined) throw missingParam('to');
    const streams = this.store.streams;
    const after = await tokenPosition(from, userId, streams);
    const upto = await tokenPosition(to, userId, streams);
    if (after === undefined || upto === undefined) throw invalidParam('Invalid stream token');
    const changed = upto > after ? await this.store.keys.deviceListChanges(userId, after, upto) : [];
    return { changed, left: [] };
  }

  async uploadCrossSigning(requester: Requester, body: JsonObject, ip: string): Promise<void> {
    const userId = requester.userId;
    const uploaded: [string, JsonObject][] = [];
    for (const [field, type] of Object.entries(CROSS_SIGNING_TYPES)) {
      const key = body[field];
      if (key === undefined || key === null) continue;
      if (!isObject(key)) throw badJson(`'${field}' must be an object`);
      if (key.user_id !== userId) throw invalidParam(`'${field}.user_id' must be your user ID`);
      if (!Array.isArray(key.usage) || !key.usage.includes(type)) throw invalidParam(`'${field}.usage' must include ${type}`);
      if (!isStringMap(key.keys) || Object.keys(key.keys).length !== 1) throw invalidParam(`'${field}.keys' must hold exactly one key`);
      checkSignatures(key.signatures, field);
      uploaded.push([type, key]);
    }
    const existing = await this.store.keys.crossSigningKeys(userId);
    const master = uploaded.find(([type]) => type === 'master')?.[1] ?? (existing.master ? (JSON.parse(existing.master) as JsonObject) : undefined);
    if (uploaded.length > 0 && !master) throw missingParam('master_key');
    for (const [type, key] of uploaded) {
      if (type === 'master') continue;
      const masterKey = publicKeyOf(master!);
      const signature = (key.signatures as Record<string, Record<string, string>> | undefined)?.[userId]?.[`ed25519:${masterKey}`];
      if (signature === undefined || !verifyEd25519(key, masterKey, signature)) {
        throw new MatrixError(400, 'M_INVALID_SIGNATURE', `The ${type} key must be signed by the master key`);
      }
    }
    const replaces = uploaded.some(([type, key]) => existing[type] !== undefined && existing[type] !== JSON.stringify(key));
    // The first upload needs no re-authentication (spec v1.11); replacing keys does.
    let completedSession: string | undefined;
    if (replaces) {
      const outcome = await this.uia.authenticate({ auth: body.auth, operation: 'POST /keys/device_signing/upload', userId, flows: [['m.login.password']], ip, params: uiaParams(body) });
      // A retry of the same upload: it was stored when the session completed.
      if (outcome.replay) return;
      if (!(await this.uia.finish(outcome.sessionId))) throw this.uia.completedAnswer({ flows: [['m.login.password']] }, outcome);
      completedSession = outcome.sessionId;
    }
    const changed = uploaded.filter(([type, key]) => existing[type] !== JSON.stringify(key));
    if (changed.length === 0) return;
    await this.writer.write(async (tx) => {
      for (const [type, key] of changed) await tx.store.keys.setCrossSigningKey(userId, type, JSON.stringify(key));
      await tx.store.keys.addDeviceListChange(userId, await tx.position(userId), userId);
    });
    if (completedSession !== undefined) await this.uia.record(completedSession, {});
  }

  /**
   * Stores signatures of keys: the signer's own devices and cross-signing keys, or another user's
   * master key. Each signature is checked against the signer's key; the signed object must be the
   * key the server holds.
   */
  async uploadSignatures(requester: Requester, body: JsonObject): Promise<{ failures: JsonObject }> {
    const signer = requester.userId;
    const failures: Record<string, JsonObject> = {};
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
    for (const [userId, objects] of Object.entries(body)) {
      if (!isObject(objects)) throw badJson(`'${userId}' must map key IDs to signed objects`);
      if (!isUserId(userId)) throw invalidParam(`Not a user ID: ${userId}`);
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
      });
    }
    return { failures };
  }

  /** Part of creating a device (in the creating unit of work): the user's device list changed. */
  async onDeviceCreated(work: Store, userId: string, position: number): Promise<void> {
    await work.keys.addDeviceListChange(userId, position, userId);
  }

  /** Part of deleting devices (in the deleting unit of work): their keys go, and the user's device list changed. */
  async onDevicesDeleted(work: Store, userId: string, deviceIds: readonly string[], position: number): Promise<void> {
    await work.keys.deleteForDevices(userId, deviceIds);
    await work.keys.addDeviceListChange(userId, position, userId);
  }
}

