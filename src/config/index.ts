import { z } from 'zod';
import { coreConfigSchema } from './schema.js';
import { adminSection } from './sections/admin.js';
import { directorySection } from './sections/directory.js';
import { emailSection } from './sections/email.js';
import { smsConfigSection } from './sections/sms.js';
import { threepidSection } from './sections/threepid.js';
import { mediaSection } from './sections/media.js';
import { searchSection } from './sections/search.js';
import { profileSection } from './sections/profile.js';
import { voipSection } from './sections/voip.js';

/**
 * The whole homeserver config. Each area adds its keys here from its own module under sections/,
 * so that one schema describes every key an admin can set.
 */
export const configSchema = coreConfigSchema.extend({
  ...smsConfigSection,
  ...emailSection,
  ...threepidSection,
  ...voipSection,
  ...adminSection,
  ...mediaSection,
  ...directorySection,
  ...searchSection,
  ...profileSection,
});

export type Config = z.infer<typeof configSchema>;
