import { CLIENT_AND_UNSTABLE_PREFIXES, type Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { objectBody } from '../../validate.js';

export function keyRoutes(router: Router, { keys }: Services): void {
  router.authed('POST', '/keys/upload', async ({ requester, body }) => keys.upload(requester, objectBody(body)));
  router.authed('POST', '/keys/query', async ({ requester, body }) => keys.query(requester, objectBody(body)));
  router.authed('POST', '/keys/claim', async ({ body }) => keys.claim(objectBody(body)));
  router.authed('GET', '/keys/changes', async ({ requester, query }) => keys.changes(requester.userId, query.from, query.to));
  // Also under /unstable: clients from before v3 bootstrap cross-signing there, and Synapse still serves it.
  router.authed(
    'POST',
    '/keys/device_signing/upload',
    async ({ requester, body, ip }) => {
      await keys.uploadCrossSigning(requester, objectBody(body), ip);
      return {};
    },
    { prefixes: CLIENT_AND_UNSTABLE_PREFIXES },
  );
  router.authed('POST', '/keys/signatures/upload', async ({ requester, body }) => keys.uploadSignatures(requester, objectBody(body)));
}
