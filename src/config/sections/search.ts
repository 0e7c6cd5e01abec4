import { z } from 'zod';

/** Server-side search (POST /search), with Synapse's key name and default. */
export const searchSection = {
  /** false: every search is refused (400, as Synapse answers), and nothing is searched. */
  enable_search: z.boolean().default(true),
};
