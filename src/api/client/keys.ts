import { z } from 'zod';
import { CLIENT_AND_UNSTABLE_PREFIXES, type Router } from '../../http/router.js';
import { dict, optional, parseBody, parseQuery } from '../../http/parse.js';
import type { Services } from '../../services/index.js';
import { CROSS_SIGNING_TYPES } from '../../services/e2ee/e2e-keys.js';
import { DeviceId, JsonObject, KeyId, Signatures, UserId, signedObject } from '../../http/common-schemas.js';

/** The spec's `timeout` (ms to wait for other servers); Myelin does not federate, so it waits for none. */
const Timeout = optional(z.number().int().min(0));

const DeviceKeys = signedObject({
  user_id: z.string(),
  device_id: z.string(),
  algorithms: z.array(z.string()),
  keys: dict(z.string(), z.string()),
  signatures: Signatures,
});
const KeyMap = dict(KeyId, z.union([z.string(), signedObject({ key: z.string() })]));
const KeysUpload = z.object({ device_keys: optional(DeviceKeys), one_time_keys: optional(KeyMap), fallback_keys: optional(KeyMap) });

const KeysQuery = z.object({ device_keys: dict(UserId, z.array(DeviceId)), timeout: Timeout });
const KeysClaim = z.object({ one_time_keys: dict(UserId, dict(z.string(), z.string())), timeout: Timeout });
const KeyChanges = z.object({ from: z.string(), to: z.string() });

function crossSigningKey(usage: string) {
  return optional(
    signedObject({
      user_id: z.string(),
      usage: z.array(z.string()).refine((usages) => usages.includes(usage), `must include ${usage}`),
      keys: dict(z.string(), z.string()).refine((keys) => Object.keys(keys).length === 1, 'must hold exactly one key'),
    }),
  );
}
const CrossSigningUpload = z.object({
  master_key: crossSigningKey(CROSS_SIGNING_TYPES.master_key),
  self_signing_key: crossSigningKey(CROSS_SIGNING_TYPES.self_signing_key),
  user_signing_key: crossSigningKey(CROSS_SIGNING_TYPES.user_signing_key),
  auth: z.unknown().optional(),
});

/** user ID -> key ID -> the signed key object. */
const SignaturesUpload = dict(UserId, dict(z.string(), JsonObject));

export function keyRoutes(router: Router, { keys }: Services): void {
  router.authed('POST', '/keys/upload', async ({ requester, body }) => keys.upload(requester, parseBody(KeysUpload, body)));
  router.authed('POST', '/keys/query', async ({ requester, body }) => keys.query(requester, parseBody(KeysQuery, body).device_keys));
  router.authed('POST', '/keys/claim', async ({ body }) => keys.claim(parseBody(KeysClaim, body).one_time_keys));
  router.authed('GET', '/keys/changes', async ({ requester, query }) => {
    const { from, to } = parseQuery(KeyChanges, query);
    return keys.changes(requester.userId, from, to);
  });
  // Also under /unstable: clients from before v3 bootstrap cross-signing there, and Synapse still serves it.
  router.authed(
    'POST',
    '/keys/device_signing/upload',
    async ({ requester, body, ip }) => {
      await keys.uploadCrossSigning(requester, parseBody(CrossSigningUpload, body), ip);
      return {};
    },
    { prefixes: CLIENT_AND_UNSTABLE_PREFIXES },
  );
  router.authed('POST', '/keys/signatures/upload', async ({ requester, body }) => keys.uploadSignatures(requester, parseBody(SignaturesUpload, body)));
}
