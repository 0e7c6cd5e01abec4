import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { objectBody } from '../../validate.js';

export function roomKeyRoutes(router: Router, { keyBackup }: Services): void {
  const backup = keyBackup;
  router.authed('POST', '/room_keys/version', async ({ requester, body }) => backup.create(requester.userId, objectBody(body)));
  router.authed('GET', '/room_keys/version', async ({ requester }) => backup.getVersion(requester.userId));
  router.authed('GET', '/room_keys/version/:version', async ({ requester, params }) => backup.getVersion(requester.userId, params.version!));
  router.authed('PUT', '/room_keys/version/:version', async ({ requester, params, body }) => {
    await backup.updateVersion(requester.userId, params.version!, objectBody(body));
    return {};
  });
  router.authed('DELETE', '/room_keys/version/:version', async ({ requester, params }) => {
    await backup.deleteVersion(requester.userId, params.version!);
    return {};
  });

  router.authed('PUT', '/room_keys/keys', async ({ requester, query, body }) => backup.putAll(requester.userId, query.version, objectBody(body)));
  router.authed('GET', '/room_keys/keys', async ({ requester, query }) => backup.getKeys(requester.userId, query.version));
  router.authed('DELETE', '/room_keys/keys', async ({ requester, query }) => backup.deleteKeys(requester.userId, query.version));

  const room = '/room_keys/keys/:roomId';
  router.authed('PUT', room, async ({ requester, query, params, body }) => backup.putRoom(requester.userId, query.version, params.roomId!, objectBody(body)));
  router.authed('GET', room, async ({ requester, query, params }) => backup.getKeys(requester.userId, query.version, params.roomId!));
  router.authed('DELETE', room, async ({ requester, query, params }) => backup.deleteKeys(requester.userId, query.version, params.roomId!));

  const session = '/room_keys/keys/:roomId/:sessionId';
  router.authed('PUT', session, async ({ requester, query, params, body }) =>
    backup.putSession(requester.userId, query.version, params.roomId!, params.sessionId!, objectBody(body)),
  );
  router.authed('GET', session, async ({ requester, query, params }) => backup.getKeys(requester.userId, query.version, params.roomId!, params.sessionId!));
  router.authed('DELETE', session, async ({ requester, query, params }) =>
    backup.deleteKeys(requester.userId, query.version, params.roomId!, params.sessionId!),
  );
}
