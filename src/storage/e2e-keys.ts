import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface OneTimeKey {
  algorithm: string;
  key_id: string;
  key_json: string;
}

/** Device keys, one-time and fallback keys, cross-signing keys and signatures, and device-list changes. */
export class E2eKeysRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async getDeviceKeys(userId: string, deviceId: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('e2e_device_keys').select('key_json').where('user_id', '=', userId).where('device_id', '=', deviceId).executeTakeFirst();
    return row?.key_json;
  }

  async setDeviceKeys(userId: string, deviceId: string, json: string): Promise<void> {
    await this.db
      .insertInto('e2e_device_keys')
      .values({ user_id: userId, device_id: deviceId, key_json: json })
      .onConflict((oc) => oc.columns(['user_id', 'device_id']).doUpdateSet({ key_json: json }))
      .execute();
  }

  /** Keys of the user's existing devices (all when deviceIds is empty), with each device's display name. */
  listDeviceKeys(userId: string, deviceIds: readonly string[]) {
    let query = this.db
      .selectFrom('e2e_device_keys')
      .innerJoin('devices', (join) => join.onRef('devices.user_id', '=', 'e2e_device_keys.user_id').onRef('devices.device_id', '=', 'e2e_device_keys.device_id'))
      .select(['e2e_device_keys.device_id', 'e2e_device_keys.key_json', 'devices.display_name'])
      .where('e2e_device_keys.user_id', '=', userId);
    if (deviceIds.length > 0) query = query.where('e2e_device_keys.device_id', 'in', deviceIds);
    return query.execute();
  }

  existingOneTimeKeys(userId: string, deviceId: string, keyIds: readonly { algorithm: string; key_id: string }[]): Promise<OneTimeKey[]> {
    if (keyIds.length === 0) return Promise.resolve([]);
    return this.db
      .selectFrom('e2e_one_time_keys')
      .select(['algorithm', 'key_id', 'key_json'])
      .where('user_id', '=', userId)
      .where('device_id', '=', deviceId)
      .where('key_id', 'in', keyIds.map((k) => k.key_id))
      .execute();
  }

  async addOneTimeKeys(userId: string, deviceId: string, keys: readonly OneTimeKey[]): Promise<void> {
    if (keys.length === 0) return;
    await this.db
      .insertInto('e2e_one_time_keys')
      .values(keys.map((k) => ({ user_id: userId, device_id: deviceId, ...k })))
      .onConflict((oc) => oc.columns(['user_id', 'device_id', 'algorithm', 'key_id']).doNothing())
      .execute();
  }

  async oneTimeKeyCounts(userId: string, deviceId: string): Promise<Record<string, number>> {
    const rows = await this.db
      .selectFrom('e2e_one_time_keys')
      .select(['algorithm', (eb) => eb.fn.countAll<number>().as('n')])
      .where('user_id', '=', userId)
      .where('device_id', '=', deviceId)
      .groupBy('algorithm')
      .execute();
    return Object.fromEntries(rows.map((r) => [r.algorithm, Number(r.n)]));
  }

  /**
   * Removes and returns one one-time key. The delete is the claim: of two concurrent claimers of
   * the same row only one deletes it, and the other tries the next key.
   */
  async takeOneTimeKey(userId: string, deviceId: string, algorithm: string): Promise<OneTimeKey | undefined> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const candidate = await this.db
        .selectFrom('e2e_one_time_keys')
        .select(['algorithm', 'key_id', 'key_json'])
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .where('algorithm', '=', algorithm)
        .orderBy('key_id')
        .limit(1)
        .executeTakeFirst();
      if (!candidate) return undefined;
      const deleted = await this.db
        .deleteFrom('e2e_one_time_keys')
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .where('algorithm', '=', algorithm)
        .where('key_id', '=', candidate.key_id)
        .executeTakeFirst();
      if (Number(deleted.numDeletedRows) > 0) return candidate;
    }
    return undefined;
  }

  async setFallbackKey(userId: string, deviceId: string, key: OneTimeKey): Promise<void> {
    const existing = await this.db
      .selectFrom('e2e_fallback_keys')
      .select(['key_id', 'key_json'])
      .where('user_id', '=', userId)
      .where('device_id', '=', deviceId)
      .where('algorithm', '=', key.algorithm)
      .executeTakeFirst();
    // Re-uploading the same key must not mark a used key as fresh again.
    if (existing && existing.key_id === key.key_id && existing.key_json === key.key_json) return;
    await this.db
      .insertInto('e2e_fallback_keys')
      .values({ user_id: userId, device_id: deviceId, ...key, used: 0 })
      .onConflict((oc) => oc.columns(['user_id', 'device_id', 'algorithm']).doUpdateSet({ key_id: key.key_id, key_json: key.key_json, used: 0 }))
      .execute();
  }

  async unusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('e2e_fallback_keys')
      .select('algorithm')
      .where('user_id', '=', userId)
      .where('device_id', '=', deviceId)
      .where('used', '=', 0)
      .execute();
    return rows.map((r) => r.algorithm);
  }

  /** The fallback key for an algorithm, marked as used (it stays claimable until replaced). */
  async useFallbackKey(userId: string, deviceId: string, algorithm: string): Promise<OneTimeKey | undefined> {
    return this.db
      .updateTable('e2e_fallback_keys')
      .set({ used: 1 })
      .where('user_id', '=', userId)
      .where('device_id', '=', deviceId)
      .where('algorithm', '=', algorithm)
      .returning(['algorithm', 'key_id', 'key_json'])
      .executeTakeFirst();
  }

  async deleteForDevices(userId: string, deviceIds: readonly string[]): Promise<void> {
    if (deviceIds.length === 0) return;
    for (const table of ['e2e_device_keys', 'e2e_one_time_keys', 'e2e_fallback_keys'] as const) {
      await this.db.deleteFrom(table).where('user_id', '=', userId).where('device_id', 'in', deviceIds).execute();
    }
    await this.db.deleteFrom('e2e_signatures').where('target_user_id', '=', userId).where('target_key_id', 'in', deviceIds).execute();
  }

  async crossSigningKeys(userId: string): Promise<Record<string, string>> {
    const rows = await this.db.selectFrom('e2e_cross_signing_keys').select(['key_type', 'key_json']).where('user_id', '=', userId).execute();
    return Object.fromEntries(rows.map((r) => [r.key_type, r.key_json]));
  }

  async setCrossSigningKey(userId: string, keyType: string, json: string): Promise<void> {
    await this.db
      .insertInto('e2e_cross_signing_keys')
      .values({ user_id: userId, key_type: keyType, key_json: json })
      .onConflict((oc) => oc.columns(['user_id', 'key_type']).doUpdateSet({ key_json: json }))
      .execute();
  }

  async addSignature(row: { signer_user_id: string; signer_key_id: string; target_user_id: string; target_key_id: string; signature: string }): Promise<void> {
    await this.db
      .insertInto('e2e_signatures')
      .values(row)
      .onConflict((oc) => oc.columns(['target_user_id', 'target_key_id', 'signer_user_id', 'signer_key_id']).doUpdateSet({ signature: row.signature }))
      .execute();
  }

  /** Signatures on a user's keys that `viewer` may see: the user's own, and those `viewer` made. */
  signaturesOn(targetUserId: string, viewer: string) {
    return this.db
      .selectFrom('e2e_signatures')
      .select(['signer_user_id', 'signer_key_id', 'target_key_id', 'signature'])
      .where('target_user_id', '=', targetUserId)
      .where((eb) => eb.or([eb('signer_user_id', '=', targetUserId), eb('signer_user_id', '=', viewer)]))
      .execute();
  }

  async addDeviceListChange(observer: string, streamPos: number, changedUserId: string): Promise<void> {
    await this.db
      .insertInto('device_list_changes')
      .values({ user_id: observer, stream_pos: streamPos, changed_user_id: changedUserId })
      .onConflict((oc) => oc.doNothing())
      .execute();
  }

  /** Records, for each observer, that `changedUserId`'s devices or keys changed at `streamPos`. */
  async addDeviceListChanges(observers: readonly string[], streamPos: number, changedUserId: string): Promise<void> {
    for (let i = 0; i < observers.length; i += 300) {
      await this.db
        .insertInto('device_list_changes')
        .values(observers.slice(i, i + 300).map((observer) => ({ user_id: observer, stream_pos: streamPos, changed_user_id: changedUserId })))
        .onConflict((oc) => oc.doNothing())
        .execute();
    }
  }

  async deviceListChanges(observer: string, after: number, upto: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('device_list_changes')
      .select('changed_user_id')
      .distinct()
      .where('user_id', '=', observer)
      .where('stream_pos', '>', after)
      .where('stream_pos', '<=', upto)
      .execute();
    return rows.map((r) => r.changed_user_id);
  }
}
