import type { DeviceService } from '../devices.js';
import type { Notifier } from '../sync/notifier.js';
import type { E2eKeyService } from './e2e-keys.js';

/** A device's end-to-end state follows the device: its keys and queued messages go with it, and its owner's device list changes. */
export function registerDeviceHooks(devices: DeviceService, keys: E2eKeyService, notifier: Notifier): void {
  devices.deviceDeletionHooks.push(async (work, userId, deviceIds) => {
    // The stream position first, as sendToDevice takes it before listing devices, so that its
    // messages for these devices are either committed before this deletes them or never written.
    const position = await work.streams.advance();
    await work.toDevice.deleteForDevices(userId, deviceIds);
    const observers = await keys.onDevicesDeleted(work, userId, deviceIds, position);
    work.afterCommit(() => notifier.notify({ position, users: observers }));
  });
  // As Synapse does, a new device is a device-list change (its keys come later, with their own change).
  devices.deviceCreationHooks.push(async (work, userId) => {
    const position = await work.streams.advance();
    const observers = await keys.onDeviceCreated(work, userId, position);
    work.afterCommit(() => notifier.notify({ position, users: observers }));
  });
}
