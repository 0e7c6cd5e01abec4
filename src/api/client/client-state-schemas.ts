import { dict } from '../../http/parse.js';
import { z } from 'zod';
import { isUserId } from '../../services/user-ids.js';

/**
 * Zod pieces shared by the client-state routes (sync, keys, key backup, to-device, push rules,
 * presence, account data). To be folded together with the account side's shared schemas.
 */

export const UserId = z.string().refine(isUserId, 'must be a user ID');
export const RoomId = z.string().regex(/^![^:]+:.+$/, 'must be a room ID');
export const DeviceId = z.string().max(255);
/** `algorithm:key_id`, as in one-time key maps. */
export const KeyId = z.string().regex(/^[^:]+:.+$/, 'must look like algorithm:key_id');


/** user ID -> key ID -> signature. */
export const Signatures = dict(z.string(), dict(z.string(), z.string()));

/**
 * Checks `schema` but passes on the value exactly as sent. Signed JSON is stored and compared as
 * text, so the key order zod would give its output (the schema's, not the sender's) must not leak in.
 */
export function asSent<T extends z.ZodType>(schema: T): z.ZodType<z.output<T>, z.input<T>> {
  return z.unknown().check((ctx) => {
    const result = schema.safeParse(ctx.value);
    if (!result.success) for (const issue of result.error.issues) ctx.issues.push({ ...issue, input: ctx.value } as never);
  }) as unknown as z.ZodType<z.output<T>, z.input<T>>;
}

/**
 * Any JSON object, kept as sent (account data, message contents, opaque key data): a rebuilt copy
 * would reorder nothing here but would drop a "__proto__" key.
 */
export const JsonObject = asSent(dict(z.string(), z.unknown()));

/** A signed JSON object with these fields, other fields kept, all as sent. */
export function signedObject<S extends z.core.$ZodLooseShape>(shape: S) {
  return asSent(z.looseObject({ signatures: Signatures.optional() }).extend(shape));
}

/** A query parameter that is a non-negative integer; empty counts as absent, as `?timeout=` does. */
export const QueryInteger = z.preprocess(
  (value) => (value === '' ? undefined : value),
  z
    .string()
    .regex(/^\d{1,12}$/, 'must be a non-negative integer')
    .transform(Number)
    .optional(),
);

/** A query parameter that is `true` or `false`. */
export const QueryBoolean = z.enum(['true', 'false']).transform((value) => value === 'true');
