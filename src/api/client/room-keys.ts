import { z } from 'zod';
import type { Router } from '../../http/router.js';
import { dict, optional, parseBody, parseQuery } from '../../http/parse.js';
import type { Services } from '../../services/index.js';
import { BACKUP_ALGORITHMS } from '../../services/e2ee/key-backup.js';
import { JsonObject } from '../../http/common-schemas.js';

const CreateVersion = z.object({ algorithm: z.enum(BACKUP_ALGORITHMS), auth_data: JsonObject });
const UpdateVersion = CreateVersion.extend({ version: optional(z.string()) });

const Count = z.number().int().min(0);
const KeyBackupData = z.object({ first_message_index: Count, forwarded_count: Count, is_verified: z.boolean(), session_data: JsonObject });
const RoomKeyBackup = z.object({ sessions: dict(z.string(), KeyBackupData) });
const PutAll = z.object({ rooms: dict(z.string(), RoomKeyBackup) });
/** Every key request names the backup version it is for. */
const VersionQuery = z.object({ version: z.string() });

export function roomKeyRoutes(router: Router, { keyBackup }: Services): void {
  const backup = keyBackup;
  router.authed('POST', '/room_keys/version', async ({ requester, body }) => backup.create(requester.userId, parseBody(CreateVersion, body)));
  router.authed('GET', '/room_keys/version', async ({ requester }) => backup.getVersion(requester.userId));
  router.authed('GET', '/room_keys/version/:version', async ({ requester, params }) => backup.getVersion(requester.userId, params.version!));
  router.authed('PUT', '/room_keys/version/:version', async ({ requester, params, body }) => {
    await backup.updateVersion(requester.userId, params.version!, parseBody(UpdateVersion, body));
    return {};
  });
  router.authed('DELETE', '/room_keys/version/:version', async ({ requester, params }) => {
    await backup.deleteVersion(requester.userId, params.version!);
    return {};
  });

  const version = (query: Record<string, string | undefined>) => parseQuery(VersionQuery, query).version;

  router.authed('PUT', '/room_keys/keys', async ({ requester, query, body }) => backup.putAll(requester.userId, version(query), parseBody(PutAll, body).rooms));
  router.authed('GET', '/room_keys/keys', async ({ requester, query }) => backup.getKeys(requester.userId, version(query)));
  router.authed('DELETE', '/room_keys/keys', async ({ requester, query }) => backup.deleteKeys(requester.userId, version(query)));

  const room = '/room_keys/keys/:roomId';
  router.authed('PUT', room, async ({ requester, query, params, body }) => backup.putRoom(requester.userId, version(query), params.roomId!, parseBody(RoomKeyBackup, body)));
  router.authed('GET', room, async ({ requester, query, params }) => backup.getKeys(requester.userId, version(query), params.roomId!));
  router.authed('DELETE', room, async ({ requester, query, params }) => backup.deleteKeys(requester.userId, version(query), params.roomId!));

  const session = '/room_keys/keys/:roomId/:sessionId';
  router.authed('PUT', session, async ({ requester, query, params, body }) =>
    backup.putSession(requester.userId, version(query), params.roomId!, params.sessionId!, parseBody(KeyBackupData, body)),
  );
  router.authed('GET', session, async ({ requester, query, params }) => backup.getKeys(requester.userId, version(query), params.roomId!, params.sessionId!));
  router.authed('DELETE', session, async ({ requester, query, params }) =>
    backup.deleteKeys(requester.userId, version(query), params.roomId!, params.sessionId!),
  );
}
