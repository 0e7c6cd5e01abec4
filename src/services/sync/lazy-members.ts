/** How many devices are remembered, and how many member events per device. */
const MAX_DEVICES = 10_000;
const MAX_PER_DEVICE = 2_000;
/** A device not heard of for this long starts afresh (as Synapse's cache expires after 30 minutes). */
const MAX_IDLE_MS = 30 * 60_000;

interface DeviceEntry {
  touched: number;
  /** `roomId NUL userId` -> the member event ID sent; in least recently used order. */
  sent: Map<string, string>;
}

/**
 * Which member events each (user, device) was sent with lazy-loading members, so that a later sync
 * leaves out those the client already has. In memory and bounded, as Synapse keeps it: forgetting
 * costs only a redundant event later, and a client that starts an initial sync starts afresh.
 */
export class LazyMembersCache {
  private readonly devices = new Map<string, DeviceEntry>();

  constructor(private readonly now: () => number = Date.now) {}

  private entry(userId: string, deviceId: string, create: boolean): DeviceEntry | undefined {
    const key = `${userId}\u0000${deviceId}`;
    const found = this.devices.get(key);
    const now = this.now();
    if (found && now - found.touched <= MAX_IDLE_MS) {
      found.touched = now;
      this.devices.delete(key);
      this.devices.set(key, found);
      return found;
    }
    if (found) this.devices.delete(key);
    if (!create) return undefined;
    const fresh: DeviceEntry = { touched: now, sent: new Map() };
    this.devices.set(key, fresh);
    if (this.devices.size > MAX_DEVICES) this.devices.delete(this.devices.keys().next().value!);
    return fresh;
  }

  /** The member event of `memberId` in the room last sent to the device, if remembered. */
  sent(userId: string, deviceId: string, roomId: string, memberId: string): string | undefined {
    return this.entry(userId, deviceId, false)?.sent.get(`${roomId}\u0000${memberId}`);
  }

  record(userId: string, deviceId: string, roomId: string, memberId: string, eventId: string): void {
    const sent = this.entry(userId, deviceId, true)!.sent;
    const key = `${roomId}\u0000${memberId}`;
    sent.delete(key);
    sent.set(key, eventId);
    if (sent.size > MAX_PER_DEVICE) sent.delete(sent.keys().next().value!);
  }

  /** Forgets what the device was sent: it starts an initial sync. */
  clear(userId: string, deviceId: string): void {
    this.devices.delete(`${userId}\u0000${deviceId}`);
  }
}
