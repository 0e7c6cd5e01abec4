import { BlockList, isIP } from 'node:net';

/**
 * Address ranges for URL previews (url_preview_ip_range_blacklist / _whitelist): which addresses a
 * preview may connect to. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) count as their IPv4 address
 * (net.BlockList matches them both ways); IPv6 addresses that carry an IPv4 address inside (the
 * deprecated IPv4-compatible ::a.b.c.d, NAT64's 64:ff9b::/96, 6to4's 2002::/16) are also judged by
 * that IPv4 address, since a gateway may deliver them to it.
 */

/** Whether `entry` is an address or a CIDR range (address/prefix length). */
export function isCidr(entry: string): boolean {
  return parseCidr(entry) !== undefined;
}

function parseCidr(entry: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const slash = entry.indexOf('/');
  const address = slash < 0 ? entry : entry.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return undefined;
  const max = version === 4 ? 32 : 128;
  if (slash >= 0 && !/^\d{1,3}$/.test(entry.slice(slash + 1))) return undefined;
  const prefix = slash < 0 ? max : Number(entry.slice(slash + 1));
  if (prefix > max) return undefined;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** A set of address ranges. */
export class IpRangeSet {
  private readonly list = new BlockList();
  readonly size: number;

  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const range = parseCidr(entry);
      if (!range) throw new Error(`not an IP address or CIDR range: ${entry}`);
      this.list.addSubnet(range.address, range.prefix, range.family);
    }
    this.size = entries.length;
  }

  /** Whether the address (IPv4 or IPv6, no brackets or zone) is in one of the ranges. */
  has(address: string): boolean {
    const version = isIP(address);
    if (version === 0) return false;
    return this.list.check(address, version === 4 ? 'ipv4' : 'ipv6');
  }
}

/** Refused whatever the configuration says (as Synapse adds them to the preview blacklist): "any address". */
const ALWAYS_BLOCKED = new IpRangeSet(['0.0.0.0/32', '::/128']);

/**
 * Whether a preview may not connect to `address`: it is unspecified, or in the blacklist and not in
 * the whitelist, or an IPv6 address whose embedded IPv4 address is. A string that is no address at
 * all is blocked.
 */
export function isAddressBlocked(address: string, blacklist: IpRangeSet, whitelist: IpRangeSet): boolean {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const version = isIP(bare);
  if (version === 0) return true;
  if (ALWAYS_BLOCKED.has(bare)) return true;
  if (whitelist.has(bare)) return false;
  if (blacklist.has(bare)) return true;
  if (version === 6) {
    const embedded = embeddedIpv4(bare);
    if (embedded !== undefined && (ALWAYS_BLOCKED.has(embedded) || (!whitelist.has(embedded) && blacklist.has(embedded)))) return true;
  }
  return false;
}

/** The IPv4 address inside an IPv4-compatible, NAT64 (64:ff9b::/96) or 6to4 (2002::/16) IPv6 address. */
export function embeddedIpv4(address: string): string | undefined {
  const words = ipv6Words(address);
  if (!words) return undefined;
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  // ::a.b.c.d (but not :: or ::1 themselves, which are judged as IPv6)
  if (words.slice(0, 6).every((w) => w === 0) && (words[6] !== 0 || words[7]! > 1)) return v4(words[6]!, words[7]!);
  if (words[0] === 0x64 && words[1] === 0xff9b && words.slice(2, 6).every((w) => w === 0)) return v4(words[6]!, words[7]!);
  if (words[0] === 0x2002) return v4(words[1]!, words[2]!);
  return undefined;
}

/** The eight 16-bit words of an IPv6 address (with or without a trailing dotted IPv4 part). */
function ipv6Words(address: string): number[] | undefined {
  if (isIP(address) !== 6) return undefined;
  let text = address.replace(/%.*$/, '');
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((w) => parseInt(w, 16)));
  const first = parse(head);
  const last = tail === undefined ? [] : parse(tail);
  const words = tail === undefined ? first : [...first, ...new Array<number>(8 - first.length - last.length).fill(0), ...last];
  return words.length === 8 && words.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffff) ? words : undefined;
}
