import { MatrixError, notFound } from '../../errors.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { adminRoute } from './common.js';

/** Synapse's media admin API: quarantining a medium (no one is served it) and deleting one. */
export function adminMediaRoutes(router: Router, { admin, media }: Services): void {
  // As Synapse: {} whether or not the medium exists.
  adminRoute(router, admin, 'POST', 'v1', '/media/quarantine/:serverName/:mediaId', async ({ params, requester }) => {
    await media.quarantine(params.serverName!, params.mediaId!, requester.userId);
    return {};
  });
  adminRoute(router, admin, 'POST', 'v1', '/media/unquarantine/:serverName/:mediaId', async ({ params }) => {
    await media.unquarantine(params.serverName!, params.mediaId!);
    return {};
  });
  adminRoute(router, admin, 'DELETE', 'v1', '/media/:serverName/:mediaId', async ({ params }) => {
    if (params.serverName !== media.serverName) throw new MatrixError(400, 'M_UNKNOWN', 'Can only delete local media');
    if (!(await media.delete(params.serverName, params.mediaId!))) throw notFound('Unknown media');
    return { deleted_media: [params.mediaId], total: 1 };
  });
}
