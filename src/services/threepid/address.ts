import { createRequire } from 'node:module';
import type { CountryCode, NumberType } from 'libphonenumber-js/max';
import { invalidParam } from '../../errors.js';

type PhoneNumbers = typeof import('libphonenumber-js/max');
let phoneNumbersModule: PhoneNumbers | undefined;
/**
 * libphonenumber-js with the full metadata: the default (min) set cannot tell a mobile number from
 * a premium-rate one, and guesses the country of shared calling codes (+1, +7, +44) from leading
 * digits only. Loaded on the first phone number: its metadata is ~2 MB of heap that a server
 * whose users never give one does not need from start-up on.
 */
const phoneNumbers = (): PhoneNumbers => (phoneNumbersModule ??= createRequire(import.meta.url)('libphonenumber-js/max') as PhoneNumbers);

export type Medium = 'email' | 'msisdn';

// Characters that are never part of a usable address and could break a mail header or a page.
// eslint-disable-next-line no-control-regex -- control characters are exactly what this rejects
const FORBIDDEN = /[\s<>()[\]\\,;:"\u0000-\u001f\u007f]/u;
const DOMAIN = /^(?=.{1,253}$)(?:[a-z0-9\u00a1-\uffff](?:[a-z0-9\u00a1-\uffff-]{0,61}[a-z0-9\u00a1-\uffff])?\.)+[a-z\u00a1-\uffff][a-z0-9\u00a1-\uffff-]{0,61}[a-z0-9\u00a1-\uffff]$/u;

/**
 * The spec's canonical form of an email address: surrounding white space trimmed, the domain
 * lowercased and the local part case-folded. Throws M_INVALID_PARAM for anything that is not a
 * plausible address.
 */
export function canonicaliseEmail(input: string): string {
  const trimmed = input.trim();
  const at = trimmed.lastIndexOf('@');
  if (at <= 0 || at === trimmed.length - 1 || trimmed.length > 254) throw invalidParam('Unable to parse email address');
  const local = trimmed.slice(0, at);
  const domain = trimmed.slice(at + 1).toLowerCase();
  if (local.length > 64 || local.includes('@') || FORBIDDEN.test(local) || !DOMAIN.test(domain)) {
    throw invalidParam('Unable to parse email address');
  }
  // Upper- then lower-casing folds characters such as ß to their case-insensitive form.
  return `${local.toUpperCase().toLowerCase()}@${domain}`;
}

export interface ParsedMsisdn {
  /** E.164 digits without the leading '+', as stored. */
  msisdn: string;
  intlFmt: string;
  /** The country the number belongs to (not the one the client claimed); undefined for non-geographic numbers (+800, +881, ...). */
  country: string | undefined;
  /** The kind of line by the numbering plan: MOBILE, FIXED_LINE, PREMIUM_RATE, TOLL_FREE, ... */
  type: NumberType;
}

/** A phone number as stored: E.164 digits without the leading '+'. */
export function canonicaliseMsisdn(country: string | undefined, phoneNumber: string): ParsedMsisdn {
  const raw = phoneNumber.trim();
  if (raw.length === 0 || raw.length > 64) throw invalidParam('Unable to parse phone number');
  const region = country ? (country.trim().toUpperCase() as CountryCode) : undefined;
  const { parsePhoneNumberWithError } = phoneNumbers();
  try {
    const parsed = parsePhoneNumberWithError(raw, region ? { defaultCountry: region } : undefined);
    if (!parsed.isValid()) throw new Error('invalid');
    return { msisdn: parsed.number.slice(1), intlFmt: parsed.formatInternational(), country: parsed.country, type: parsed.getType() };
  } catch {
    throw invalidParam('Unable to parse phone number');
  }
}

/** Canonicalises an address of either medium, for lookups such as login by 3PID. */
export function canonicaliseAddress(medium: string, address: string): string {
  if (medium === 'email') return canonicaliseEmail(address);
  if (medium === 'msisdn') {
    const digits = address.trim().replace(/^\+/, '');
    if (!/^\d{5,20}$/.test(digits)) throw invalidParam('Unable to parse phone number');
    return canonicaliseMsisdn(undefined, `+${digits}`).msisdn;
  }
  throw invalidParam(`Unsupported medium: ${medium}`);
}
