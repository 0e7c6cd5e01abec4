import type { Clock } from '../../clock.js';
import { badJson, invalidParam, missingParam } from '../../errors.js';
import type { Requester } from '../devices.js';
import { isObject, type JsonObject } from '../../validate.js';
import type { StreamWriter } from '../sync/stream-writer.js';
import { isUserId, serverNameOf } from '../user-ids.js';

/** How long a sendToDevice transaction ID is remembered. */
const TXN_LIFETIME_MS = 24 * 3_600_000;

/** Send-to-device messages: queued per recipient device until that device acknowledges them. */
export class ToDeviceService {
  constructor(
    private readonly writer: StreamWriter,
    private readonly clock: Clock,
    private readonly serverName: string,
  ) {}

  async send(requester: Requester, eventType: string, txnId: string, body: JsonObject): Promise<void> {
    if (eventType === '' || eventType.length > 255) throw invalidParam('Invalid event type');
    if (txnId === '' || txnId.length > 255) throw invalidParam('Invalid transaction ID');
    const messages = body.messages;
    if (messages === undefined || messages === null) throw missingParam('messages');
    if (!isObject(messages)) throw badJson("'messages' must be an object");
    for (const [userId, devices] of Object.entries(messages)) {
      if (!isUserId(userId)) throw invalidParam(`Not a user ID: ${userId}`);
      if (!isObject(devices) || !Object.values(devices).every(isObject)) throw badJson(`'messages.${userId}' must map device IDs to message contents`);
    }
    // Messages for other servers would need federation; they are dropped, as for an unreachable server.
    const recipients = Object.keys(messages)
      .filter((userId) => serverNameOf(userId) === this.serverName)
      .sort();
    const now = this.clock.now();
    await this.writer.write(async (tx) => {
      if (!(await tx.store.toDevice.claimTxn(requester.userId, requester.deviceId, txnId, now))) return;
      for (const userId of recipients) {
        const devices = messages[userId] as Record<string, JsonObject>;
        // The position first: it locks the stream, which deleting a device locks too, so a message
        // is never left behind for a device deleted meanwhile.
        const pos = await tx.position(userId);
        const existing = new Set((await tx.store.devices.list(userId)).map((d) => d.device_id));
        const targets = new Map<string, JsonObject>();
        const wildcard = devices['*'];
        if (wildcard) for (const d of existing) targets.set(d, wildcard);
        for (const [deviceId, content] of Object.entries(devices)) if (deviceId !== '*' && existing.has(deviceId)) targets.set(deviceId, content);
        const unique = [...targets].map(([deviceId, content]) => ({
          user_id: userId,
          device_id: deviceId,
          sender: requester.userId,
          type: eventType,
          content: JSON.stringify(content),
        }));
        if (unique.length === 0) continue;
        await tx.store.toDevice.add(unique.map((r) => ({ ...r, stream_pos: pos })));
      }
    });
  }

  /** Forgets transaction IDs older than a day (run by maintenance). */
  prune(): Promise<void> {
    return this.writer.write(async (tx) => tx.store.toDevice.pruneTxns(this.clock.now() - TXN_LIFETIME_MS));
  }
}
