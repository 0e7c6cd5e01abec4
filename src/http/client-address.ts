import { isIP } from 'node:net';

/** Names proxy-addr (Fastify's trustProxy) understands for whole address ranges. */
const RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** Whether `entry` is an address, a CIDR range or a range name that trusted_proxies may list. */
export function isProxyEntry(entry: string): boolean {
  if (RANGE_NAMES.has(entry)) return true;
  const slash = entry.indexOf('/');
  const address = slash < 0 ? entry : entry.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return false;
  if (slash < 0) return true;
  const bits = entry.slice(slash + 1);
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

/**
 * What Fastify's trustProxy gets for a listener. Synapse's `x_forwarded: true` believes the leftmost
 * X-Forwarded-For entry from whoever connects, which lets any client choose its address; Myelin
 * believes the header only from the listed proxies, and takes the
 * rightmost address that is not one of them, the one the nearest trusted proxy saw. With
 * x_forwarded and no list, the proxy is taken to run on the same host.
 */
export function trustProxySetting(listener: { x_forwarded: boolean; trusted_proxies?: string[] | undefined }): false | string[] {
  if (!listener.x_forwarded) return false;
  return listener.trusted_proxies ?? ['loopback'];
}
