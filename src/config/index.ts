import { z } from 'zod';
import { coreConfigSchema } from './schema.js';

/**
 * The whole homeserver config. Each area adds its keys here from its own module, so that one
 * file describes every key an admin can set.
 */
export const configSchema = coreConfigSchema;

export type Config = z.infer<typeof configSchema>;
