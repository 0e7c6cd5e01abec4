import { z } from 'zod';

/** One rule of room_list_publication_rules: globs over the publisher, the room and its local aliases. */
const publicationRule = z.object({
  user_id: z.string().default('*'),
  room_id: z.string().default('*'),
  alias: z.string().default('*'),
  action: z.enum(['allow', 'deny']).default('allow'),
});

export type PublicationRule = z.infer<typeof publicationRule>;

/** The published room directory and the user directory, with Synapse's key names and defaults. */
export const directorySection = {
  /**
   * Who may publish which room. The first matching rule decides; when none matches, publishing is
   * refused. Absent (Synapse's default): everyone may publish; an empty list: no one may.
   */
  room_list_publication_rules: z.array(publicationRule).optional(),
  /** false: /publicRooms answers an empty list and no room can be published. */
  enable_room_list_search: z.boolean().default(true),
  /** Whether GET /publicRooms answers without an access token. */
  allow_public_rooms_without_auth: z.boolean().default(false),
  user_directory: z
    .object({
      enabled: z.boolean().default(true),
      /** Every local user is found, not only those sharing a room with the searcher or in a public room. */
      search_all_users: z.boolean().default(false),
    })
    .prefault({}),
};
