import { readFileSync } from 'node:fs';
import type { Clock } from '../../clock.js';
import type { Config } from '../../config/index.js';
import { forbidden } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import type { AccountService } from '../accounts.js';
import type { DeviceService, Requester } from '../devices.js';
import type { ProfilePropagation } from '../rooms/profile-propagation.js';
import type { RoomService } from '../rooms/rooms.js';
import type { IdentityUnbinding } from '../threepid/identity-unbind.js';
import { AdminEventReportService } from './event-reports.js';
import { AdminRoomService } from './rooms.js';
import type { RegistrationTokenService } from './registration-tokens.js';
import { AdminUserService } from './users.js';

/** Myelin's version, from package.json (two levels above this module, in src/ as in a compiled tree). */
function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The admin API (Synapse's paths and shapes): who may use it, and its areas. */
export class AdminServices {
  readonly users: AdminUserService;
  readonly rooms: AdminRoomService;
  readonly eventReports: AdminEventReportService;
  /** As Synapse words it: the version first, then what it is (here, which server). */
  readonly serverVersion = `${readVersion()} (Myelin)`;

  constructor(
    private readonly store: Store,
    clock: Clock,
    config: Config,
    accounts: AccountService,
    devices: DeviceService,
    rooms: RoomService,
    identity: Pick<IdentityUnbinding, 'unbind'>,
    readonly registrationTokens: RegistrationTokenService,
    profilePropagation: Pick<ProfilePropagation, 'request'>,
  ) {
    this.users = new AdminUserService(store, clock, config, accounts, devices, identity, profilePropagation);
    this.rooms = new AdminRoomService(store, rooms, clock, config);
    this.eventReports = new AdminEventReportService(store);
  }

  /** Every admin endpoint starts here: 403 M_FORBIDDEN unless the requester is a server admin. */
  async requireAdmin(requester: Requester): Promise<void> {
    const user = await this.store.users.get(requester.userId);
    if (!user || user.admin !== 1 || user.deactivated === 1) throw forbidden('You are not a server admin');
  }
}
