import type { Clock } from '../../clock.js';
import type { Config } from '../../config/index.js';
import type { Store } from '../../storage/index.js';
import { StreamChannel } from '../../storage/stream-channel.js';
import type { SessionService } from '../sessions.js';
import type { UiaService } from '../uia.js';
import { AccountDataService } from './account-data.js';
import { E2eKeyService } from './e2e-keys.js';
import { FilterService } from './filters.js';
import { KeyBackupService } from './key-backup.js';
import { Notifier } from './notifier.js';
import { PresenceService } from './presence.js';
import { PushRuleService } from './pushrules.js';
import { StreamWriter } from './stream-writer.js';
import { SyncService } from './sync.js';
import { ToDeviceService } from './to-device.js';

/** What a client keeps on the server between syncs, and /sync itself. */
export interface ClientState {
  notifier: Notifier;
  sync: SyncService;
  filters: FilterService;
  pushRules: PushRuleService;
  accountData: AccountDataService;
  keys: E2eKeyService;
  toDevice: ToDeviceService;
  keyBackup: KeyBackupService;
  presence: PresenceService;
}

export function createClientState(
  config: Config,
  store: Store,
  clock: Clock,
  sessions: SessionService,
  uia: UiaService,
): ClientState {
  const notifier = new Notifier();
  if ('host' in config.database.args) {
    const channel = new StreamChannel(
      store.db.kysely,
      config.database.args,
      notifier.origin,
      (notice) => notifier.wakeLocal(notice),
      () => notifier.wakeAll(),
    );
    notifier.attach(channel);
    void channel.start();
  }

  const writer = new StreamWriter(store, notifier);
  const filters = new FilterService(store);
  const pushRules = new PushRuleService(store, writer);
  const keys = new E2eKeyService(store, writer, uia, config.server_name);
  const presence = new PresenceService(store, writer, clock);

  sessions.deviceDeletionHooks.push(async (work, userId, deviceIds) => {
    // The stream position first, as sendToDevice takes it before listing devices, so that its
    // messages for these devices are either committed before this deletes them or never written.
    const position = await work.clientState.streams.advance();
    await work.clientState.toDevice.deleteForDevices(userId, deviceIds);
    await keys.onDevicesDeleted(work, userId, deviceIds, position);
    work.afterCommit(() => notifier.notify({ position, users: [userId] }));
  });
  // As Synapse does, a new device is a device-list change (its keys come later, with their own change).
  sessions.deviceCreationHooks.push(async (work, userId) => {
    const position = await work.clientState.streams.advance();
    await keys.onDeviceCreated(work, userId, position);
    work.afterCommit(() => notifier.notify({ position, users: [userId] }));
  });

  return {
    notifier,
    sync: new SyncService(store, notifier, filters, pushRules, keys, presence),
    filters,
    pushRules,
    accountData: new AccountDataService(store, writer, pushRules),
    keys,
    toDevice: new ToDeviceService(writer, clock, config.server_name),
    keyBackup: new KeyBackupService(store),
    presence,
  };
}
