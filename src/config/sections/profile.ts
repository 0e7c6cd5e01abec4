import { z } from 'zod';

/** Who may read profiles (GET /profile/{userId}[/field]), with Synapse's key names and defaults. */
export const profileSection = {
  /** Profiles answer only requests with an access token (401 M_MISSING_TOKEN without). */
  require_auth_for_profile_requests: z.boolean().default(false),
  /**
   * A user's profile answers only users who share a room with them (joined, both), and the user
   * themself; others get 403 M_FORBIDDEN. A request without an access token then gets 401.
   */
  limit_profile_requests_to_users_who_share_rooms: z.boolean().default(false),
};
