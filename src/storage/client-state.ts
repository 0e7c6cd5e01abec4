import type { Kysely } from 'kysely';
import { AccountDataRepo } from './account-data.js';
import { E2eKeysRepo } from './e2e-keys.js';
import { FiltersRepo } from './filters.js';
import { KeyBackupRepo } from './key-backup.js';
import { PresenceRepo } from './presence.js';
import { PushRulesRepo } from './pushrules.js';
import type { Database } from './schema.js';
import { StreamsRepo } from './streams.js';
import { ToDeviceRepo } from './to-device.js';

/** The repositories of per-user client state, over one connection or transaction. */
export class ClientStateRepos {
  readonly streams: StreamsRepo;
  readonly accountData: AccountDataRepo;
  readonly toDevice: ToDeviceRepo;
  readonly keys: E2eKeysRepo;
  readonly filters: FiltersRepo;
  readonly pushRules: PushRulesRepo;
  readonly keyBackup: KeyBackupRepo;
  readonly presence: PresenceRepo;

  constructor(kysely: Kysely<Database>) {
    this.streams = new StreamsRepo(kysely);
    this.accountData = new AccountDataRepo(kysely);
    this.toDevice = new ToDeviceRepo(kysely);
    this.keys = new E2eKeysRepo(kysely);
    this.filters = new FiltersRepo(kysely);
    this.pushRules = new PushRulesRepo(kysely);
    this.keyBackup = new KeyBackupRepo(kysely);
    this.presence = new PresenceRepo(kysely);
  }
}
