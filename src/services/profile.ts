import type { Config } from '../config/index.js';
import { forbidden, MatrixError } from '../errors.js';
import type { Store } from '../storage/index.js';
import type { AccountService } from './accounts.js';
import type { ProfilePropagation } from './rooms/profile-propagation.js';

export type ProfileField = 'displayname' | 'avatar_url';

/** Reading profiles (with the server's lookup limits) and changing one's own, the change reaching one's rooms. */
export class ProfileService {
  constructor(
    private readonly store: Store,
    private readonly config: Config,
    private readonly accounts: AccountService,
    private readonly propagation: ProfilePropagation,
  ) {}

  /** Whether reading a profile needs to know who asks (the routes then read an access token when one is given). */
  get lookupsNeedRequester(): boolean {
    return this.config.require_auth_for_profile_requests || this.config.limit_profile_requests_to_users_who_share_rooms;
  }

  /** GET /profile/{userId}: `requesterId` undefined for a request without an access token. */
  async lookup(requesterId: string | undefined, userId: string): Promise<{ displayname?: string; avatar_url?: string }> {
    if (this.lookupsNeedRequester && requesterId === undefined) throw new MatrixError(401, 'M_MISSING_TOKEN', 'Missing access token');
    // As Synapse (MSC1301): before anything is looked up, so an unknown user answers as one sharing no room.
    if (this.config.limit_profile_requests_to_users_who_share_rooms && requesterId !== userId && !(await this.store.rooms.shareRoom(requesterId!, userId))) {
      throw forbidden("You share no room with this user: their profile isn't available");
    }
    return this.accounts.getProfile(userId);
  }

  /** PUT /profile/{userId}/{field}: stored at once; the new member events follow in the background (ProfilePropagation). */
  async set(requesterId: string, userId: string, field: ProfileField, value: string | null): Promise<void> {
    await this.store.transaction(async (tx) => {
      await this.accounts.within(tx).setProfileField(requesterId, userId, field, value);
      await this.propagation.request(tx, userId);
    });
  }
}
