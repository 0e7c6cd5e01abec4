import { isCidr } from '../services/media/ip-ranges.js';

/** Names proxy-addr (Fastify's trustProxy) understands for whole address ranges. */
const RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** Whether `entry` is an address, a CIDR range or a range name that trusted_proxies may list. */
export function isProxyEntry(entry: string): boolean {
  return RANGE_NAMES.has(entry) || isCidr(entry);
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
