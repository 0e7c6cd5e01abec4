import type { Config } from '../config/index.js';
import type { Store } from '../storage/index.js';
import { MatrixError, forbidden, missingParam } from '../errors.js';
import type { AccountService, NewThreepid, RegisterResult } from './accounts.js';
import { addressBucket, type RateLimiter } from './ratelimiter.js';
import type { DeviceService } from './devices.js';
import { Operation, validatedThreepids, type AuthDict, type UiaParams, type UiaReplay, type UiaRequired, type UiaService } from './uia.js';

/** Builds the UIA flows offered for registration from the current config. */
export type RegistrationFlows = () => string[][];

/** What a registration UIA session remembers between requests (never the password). */
export interface RegistrationParams {
  username?: string | undefined;
  device_id?: string | undefined;
  initial_device_display_name?: string | undefined;
  inhibit_login?: boolean | undefined;
}

/** POST /register, as parsed at the edge. */
export interface RegistrationRequest extends RegistrationParams {
  kind: 'user' | 'guest';
  password?: string | undefined;
  refresh_token?: boolean | undefined;
  auth?: AuthDict | undefined;
  /** A guest's access token: the registration upgrades that guest account (the spec's guest upgrade). */
  guest_access_token?: string | undefined;
  /** This request's parameters as the UIA session remembers them. */
  params: UiaParams<RegistrationParams>;
  ip: string;
}

/** What a completed registration session keeps for a retry: never a token. */
type RecordedRegistration = { user_id: string; device_id?: string };

/** Another area's part in a registration completing (e.g. a registration token's use), in the creating transaction. */
export type RegistrationHook = (work: Store, sessionId: string, userId: string) => Promise<void>;

/** Another area's part once a registration's first device is signed in, with the 3PIDs bound at registration. */
export type SignedInHook = (work: Store, userId: string, deviceId: string, threepids: readonly NewThreepid[]) => Promise<void>;

/** POST /register: who may register, with which UIA flows, and under which limits. */
export class RegistrationService {
  private readonly completionHooks: RegistrationHook[] = [];
  private readonly signedInHooks: SignedInHook[] = [];

  constructor(
    private readonly config: Config,
    private readonly accounts: AccountService,
    private readonly devices: DeviceService,
    private readonly uia: UiaService,
    private readonly limiter: RateLimiter,
    readonly flows: RegistrationFlows,
  ) {}

  /** Runs `hook` in the transaction that creates each account registered through UIA. */
  onCompleted(hook: RegistrationHook): void {
    this.completionHooks.push(hook);
  }

  /** Runs `hook` in the transaction that creates each account registered through UIA with a device. */
  onSignedIn(hook: SignedInHook): void {
    this.signedInHooks.push(hook);
  }

  async register(req: RegistrationRequest): Promise<RegisterResult> {
    const { password, ip } = req;
    const refresh = req.refresh_token ?? false;
    await this.limiter.check(`register:ip:${addressBucket(ip)}`, this.config.rc_registration);

    if (req.kind === 'guest') {
      if (!this.config.allow_guest_access) throw new MatrixError(403, 'M_GUEST_ACCESS_FORBIDDEN', 'Guest access is disabled');
      await this.limiter.take(`register:ip:${addressBucket(ip)}`, this.config.rc_registration);
      return this.accounts.register({ guest: true, inhibitLogin: false, refresh, ip, displayName: req.initial_device_display_name });
    }

    if (!this.config.enable_registration) throw forbidden('Registration has been disabled');
    if (!this.accounts.passwordsEnabled()) throw forbidden('Registration with a password is disabled');
    const upgrading = req.guest_access_token !== undefined ? await this.guestToUpgrade(req.guest_access_token, req.username) : undefined;
    const localpart = upgrading === undefined && req.username !== undefined ? this.accounts.validateLocalpart(req.username) : undefined;
    // A retry of a completed registration names a user that now exists: that is not "in use".
    const session = req.auth?.session;
    const retry = session !== undefined && (await this.uia.isCompleted(session));
    if (localpart !== undefined && !this.config.inhibit_user_in_use_error && !retry) await this.accounts.ensureAvailable(localpart);
    if (password !== undefined) this.accounts.checkPasswordPolicy(password);

    const flows = this.flows();
    let finalLocalpart: string | undefined;
    return this.uia.perform<RegistrationParams, RegisterResult>(
      {
        auth: req.auth,
        operation: Operation.register,
        flows,
        ip,
        params: req.params,
        ...(password !== undefined ? { hashSecret: () => this.accounts.hashPassword(password) } : {}),
      },
      {
        check: async ({ params, secretHash }) => {
          if (upgrading !== undefined) {
            if (params.username?.toLowerCase() !== localpartOf(upgrading)) throw forbidden("A guest upgrade keeps the guest's own username");
            if (password === undefined && secretHash === undefined) throw missingParam('password');
            return;
          }
          finalLocalpart = params.username !== undefined ? this.accounts.validateLocalpart(params.username) : undefined;
          if (finalLocalpart !== undefined && finalLocalpart !== localpart && !this.config.inhibit_user_in_use_error) await this.accounts.ensureAvailable(finalLocalpart);
          if (password === undefined && secretHash === undefined) throw missingParam('password');
        },
        run: async ({ sessionId, params, secretHash, results }) => {
          await this.limiter.take(`register:ip:${addressBucket(ip)}`, this.config.rc_registration);
          const threepids = validatedThreepids(results);
          if (upgrading !== undefined) {
            return this.accounts.upgradeGuest(upgrading, {
              ...(password !== undefined ? { password } : { passwordHash: secretHash }),
              deviceId: params.device_id,
              displayName: params.initial_device_display_name,
              inhibitLogin: params.inhibit_login ?? false,
              refresh,
              ip,
              onCreated: async (work, userId) => {
                for (const hook of this.completionHooks) await hook(work, sessionId, userId);
              },
              onSignedIn: async (work, userId, deviceId) => {
                for (const hook of this.signedInHooks) await hook(work, userId, deviceId, []);
              },
            });
          }
          return this.accounts.register({
            localpart: finalLocalpart,
            ...(password !== undefined ? { password } : { passwordHash: secretHash }),
            guest: false,
            deviceId: params.device_id,
            displayName: params.initial_device_display_name,
            inhibitLogin: params.inhibit_login ?? false,
            refresh,
            ip,
            threepids,
            onCreated: async (work, userId) => {
              for (const hook of this.completionHooks) await hook(work, sessionId, userId);
            },
            onSignedIn: async (work, userId, deviceId) => {
              for (const hook of this.signedInHooks) await hook(work, userId, deviceId, threepids);
            },
          });
        },
        record: (result): RecordedRegistration => ({ user_id: result.user_id, ...(result.device_id !== undefined ? { device_id: result.device_id } : {}) }),
        replay: (replay, refuse) => this.replay(replay, refuse, password, refresh, ip),
      },
    );
  }

  /** The guest account a guest_access_token names, which `username` must name too (the spec requires it). */
  private async guestToUpgrade(token: string, username: string | undefined): Promise<string> {
    // Not M_UNKNOWN_TOKEN: a 401 from /register is a UIA answer.
    const guest = await this.devices.authenticate(token).catch(() => {
      throw forbidden('guest_access_token is not a valid access token');
    });
    if (!guest.isGuest) throw forbidden('guest_access_token is not the token of a guest account');
    if (username === undefined) throw missingParam('username');
    if (username.toLowerCase() !== localpartOf(guest.userId)) throw forbidden("A guest upgrade keeps the guest's own username");
    return guest.userId;
  }

  /**
   * A retry of the request that completed registration gets its answer again: the same user and
   * device, with a fresh token (the device's earlier one, lost with the first answer, dies). As a
   * new login, it needs the password; the session ID alone is not a credential.
   */
  private async replay(replay: UiaReplay, refuse: () => UiaRequired, password: string | undefined, refresh: boolean, ip: string): Promise<RegisterResult> {
    const recorded = replay.recorded as unknown as RecordedRegistration;
    if (recorded.device_id === undefined) return { user_id: recorded.user_id };
    const check = password !== undefined ? await this.accounts.checkPassword(recorded.user_id, password) : undefined;
    if (!check?.ok || check.deactivated) throw refuse();
    const issued = await this.devices.signIn({ userId: recorded.user_id, deviceId: recorded.device_id, refresh, ip });
    return { user_id: recorded.user_id, ...issued };
  }
}

function localpartOf(userId: string): string {
  return userId.slice(1, userId.indexOf(':'));
}
