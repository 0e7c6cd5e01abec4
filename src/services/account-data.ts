import { MatrixError, forbidden, invalidParam, notFound } from '../errors.js';
import type { Store } from '../storage/index.js';
import type { JsonObject } from '../validate.js';
import type { PushRuleService } from './push-rules/push-rules.js';
import type { StreamWriter } from './sync/stream-writer.js';

/** Types the server maintains itself; clients change them through their own APIs. */
const SERVER_GLOBAL_TYPES = new Set(['m.push_rules']);
const SERVER_ROOM_TYPES = new Set(['m.fully_read']);

const ROOM_ID = /^![^:]+:.+$/;

function checkType(type: string): void {
  if (type === '' || type.length > 255) throw invalidParam('Invalid account data type');
}

/** Per-user account data, global and per room. */
export class AccountDataService {
  constructor(
    private readonly store: Store,
    private readonly writer: StreamWriter,
    private readonly pushRules: PushRuleService,
  ) {}

  private checkAccess(requesterId: string, userId: string, verb: string): void {
    if (requesterId !== userId) throw forbidden(`Cannot ${verb} account data for other users.`);
  }

  async put(requesterId: string, userId: string, roomId: string | undefined, type: string, content: JsonObject): Promise<void> {
    this.checkAccess(requesterId, userId, 'add');
    if (roomId !== undefined && !ROOM_ID.test(roomId)) throw invalidParam(`Invalid room ID: ${roomId}`);
    checkType(type);
    if ((roomId === undefined ? SERVER_GLOBAL_TYPES : SERVER_ROOM_TYPES).has(type)) {
      throw new MatrixError(405, 'M_BAD_JSON', `Cannot set ${type} through this API.`);
    }
    const json = JSON.stringify(content);
    await this.writer.write(async (tx) => {
      await tx.store.accountData.put(userId, roomId ?? '', type, json, await tx.position(userId));
    });
  }

  async get(requesterId: string, userId: string, roomId: string | undefined, type: string): Promise<JsonObject> {
    this.checkAccess(requesterId, userId, 'get');
    if (roomId !== undefined && !ROOM_ID.test(roomId)) throw invalidParam(`Invalid room ID: ${roomId}`);
    if (roomId === undefined && type === 'm.push_rules') return this.pushRules.accountDataContent(userId);
    const json = await this.store.accountData.get(userId, roomId ?? '', type);
    if (json === undefined) throw notFound('Account data not found');
    return JSON.parse(json) as JsonObject;
  }
}
