import { z } from 'zod';
import { MatrixError, missingParam } from '../errors.js';
import { MAX_AVATAR_URL_LENGTH, MAX_DISPLAYNAME_LENGTH } from '../services/accounts.js';
import { canonicaliseAddress, canonicaliseEmail, canonicaliseMsisdn, type ParsedMsisdn } from '../services/threepid/address.js';
import { dict, optional, refuseWith } from './parse.js';
import { isUserId } from '../services/user-ids.js';

/**
 * The zod pieces that several endpoints' schemas share, so that one field is read one way
 * everywhere (see parse.ts for how a failure is answered).
 */

/** A string the service canonicalises: its MatrixError becomes M_INVALID_PARAM naming the field. */
function canonical<T>(max: number, canonicalise: (value: string) => T) {
  return z
    .string()
    .max(max)
    .transform((value, ctx) => {
      try {
        return canonicalise(value);
      } catch (err) {
        if (!(err instanceof MatrixError)) throw err;
        ctx.addIssue({ code: 'custom', message: err.message, input: value });
        return z.NEVER;
      }
    });
}

/** The spec's grammar for client_secret; sids and link tokens use the same alphabet. */
export const CLIENT_SECRET = /^[0-9a-zA-Z.=_-]{1,255}$/;

export const ClientSecret = z.string().regex(CLIENT_SECRET, 'must be 1 to 255 of [0-9a-zA-Z.=_-]');
export const Sid = z.string().regex(CLIENT_SECRET, 'must be 1 to 255 of [0-9a-zA-Z.=_-]');
export const DeviceId = z.string().max(512);
/** An email address, in the spec's canonical form. */
export const Email = canonical(512, canonicaliseEmail);
export const Medium = z.enum(['email', 'msisdn']);
/** medium + address of an existing 3PID, the address canonicalised for its medium. */
export const ThreepidAddress = z
  .object({ medium: Medium, address: z.string().max(512) })
  .transform((value, ctx) => {
    try {
      return { medium: value.medium, address: canonicaliseAddress(value.medium, value.address) };
    } catch (err) {
      if (!(err instanceof MatrixError)) throw err;
      ctx.addIssue({ code: 'custom', message: err.message, path: ['address'], input: value.address });
      return z.NEVER;
    }
  });
/** A phone number and the country to read it in, as the msisdn requestToken endpoints take them. */
export const PhoneNumberFields = { country: z.string().max(8), phone_number: z.string().max(64) };

/** Transform for an object with PhoneNumberFields: adds the parsed number, or refuses `phone_number`. */
export function withParsedMsisdn<T extends { country: string; phone_number: string }>(value: T, ctx: z.core.$RefinementCtx<T>): T & { msisdn: ParsedMsisdn } {
  try {
    return { ...value, msisdn: canonicaliseMsisdn(value.country, value.phone_number) };
  } catch (err) {
    if (!(err instanceof MatrixError)) throw err;
    ctx.addIssue({ code: 'custom', message: err.message, path: ['phone_number'], input: value.phone_number });
    return z.NEVER;
  }
}
export const Displayname = z.string().max(MAX_DISPLAYNAME_LENGTH);
export const AvatarUrl = z
  .string()
  .max(MAX_AVATAR_URL_LENGTH)
  .refine((value) => value === '' || /^mxc:\/\/[^/]+\/[^/]+$/.test(value), 'must be an mxc:// URI');

/**
 * next_link: an absolute http(s) URL without credentials; '' counts as none. Whether its host is
 * allowed depends on the config, so the service checks that.
 */
export const NextLink = optional(z.string().max(2048)).transform((value, ctx) => {
  if (value === undefined || value === '') return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'not a valid URL', input: value });
    return z.NEVER;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') ctx.addIssue({ code: 'custom', message: 'must be an http or https URL', input: value });
  else if (url.username !== '' || url.password !== '') ctx.addIssue({ code: 'custom', message: 'must not carry credentials', input: value });
  else return url;
  return z.NEVER;
});

/** What every requestToken endpoint takes (both media), before its medium's own fields. */
export const TokenRequestFields = {
  client_secret: ClientSecret,
  send_attempt: z.number().int().min(0),
  next_link: NextLink,
  id_server: optional(z.string().max(512)),
  id_access_token: optional(z.string().max(2048)),
};

/** id_server without id_access_token is refused (the spec made the token required with the server). */
export const idServerNeedsToken = [
  (value: { id_server?: string | undefined; id_access_token?: string | undefined }) => value.id_server === undefined || value.id_access_token !== undefined,
  refuseWith(() => new MatrixError(400, 'M_INVALID_PARAM', 'id_access_token is required when id_server is given')),
] as const;

/** A validation session's credentials, as POST /account/3pid/add, bind and the 3PID UIA stages name one. */
export const ThreepidCreds = z.object({ sid: Sid, client_secret: ClientSecret });

/**
 * The UIA `auth` dict: its type and session here (a wrong one is 400, as nothing can go on); the
 * stage's own fields are read by the stage (PasswordAuth, ThreepidAuth), so that a bad one fails
 * that stage with a 401 the client can retry from.
 */
export const AuthDict = z.looseObject({ type: optional(z.string()), session: optional(z.string()) });
export const WithAuth = z.object({ auth: optional(AuthDict) });

const IDENTIFIER_TYPES = ['m.id.user', 'm.id.thirdparty', 'm.id.phone'];
/** A login identifier (m.id.user, m.id.thirdparty, m.id.phone); another type is M_UNKNOWN, as Synapse answers. */
export const Identifier = z
  .looseObject({
    type: z.string().refine(
      (type) => IDENTIFIER_TYPES.includes(type),
      refuseWith(() => new MatrixError(400, 'M_UNKNOWN', 'Unknown identifier type')),
    ),
  })
  .pipe(
    z.discriminatedUnion('type', [
      z.object({ type: z.literal('m.id.user'), user: z.string() }),
      z.object({ type: z.literal('m.id.thirdparty'), medium: z.string(), address: z.string() }),
      z.object({ type: z.literal('m.id.phone'), country: z.string(), phone: z.string() }),
    ]),
  );
export type LoginIdentifier = z.output<typeof Identifier>;

/** Who a login or a password stage names: `identifier`, or the legacy top-level `user` / `medium` + `address`. */
export const IdentifierFields = {
  identifier: optional(Identifier),
  user: optional(z.string()),
  medium: optional(z.string()),
  address: optional(z.string()),
};

/** The identifier fields as parsed, before the legacy forms are read. */
export interface IdentifierFieldValues {
  identifier?: LoginIdentifier | undefined;
  user?: string | undefined;
  medium?: string | undefined;
  address?: string | undefined;
}

/** The identifier the fields name; the legacy forms are read as the identifier they stand for. */
export function identifierOf(fields: IdentifierFieldValues): LoginIdentifier {
  if (fields.identifier) return fields.identifier;
  if (fields.user !== undefined) return { type: 'm.id.user', user: fields.user };
  if (fields.medium !== undefined || fields.address !== undefined) {
    if (fields.medium === undefined) throw missingParam('medium');
    if (fields.address === undefined) throw missingParam('address');
    return { type: 'm.id.thirdparty', medium: fields.medium, address: fields.address };
  }
  throw missingParam('identifier');
}

/** m.login.password's fields of the auth dict. */
export const PasswordAuth = z.object({ password: z.string(), ...IdentifierFields });

/** m.login.email.identity's and m.login.msisdn's fields: `threepid_creds` (or the old `threepidCreds`). */
export const ThreepidAuth = z
  .object({ threepid_creds: optional(ThreepidCreds), threepidCreds: optional(ThreepidCreds) })
  .refine((value) => value.threepid_creds ?? value.threepidCreds, refuseWith(() => missingParam('threepid_creds')))
  .transform((value) => (value.threepid_creds ?? value.threepidCreds)!);

// Client-state pieces (sync, keys, key backup, to-device, push rules, presence, account data).

export const UserId = z.string().refine(isUserId, 'must be a user ID');
export const RoomId = z.string().regex(/^![^:]+:.+$/, 'must be a room ID');
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
