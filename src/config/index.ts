import { z } from 'zod';
import { coreConfigSchema } from './schema.js';

/**
 * The whole homeserver config. Each area adds its keys here from its own module under sections/,
 * so that one schema describes every key an admin can set.
 */
export const configSchema = coreConfigSchema.extend({});

export type Config = z.infer<typeof configSchema>;
