import type { Clock } from '../../clock.js';
import { MatrixError, invalidParam } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import type { PusherRow } from '../../storage/pushers.js';
import type { JsonObject } from '../../validate.js';
import type { Requester } from '../devices.js';
import { canonicaliseEmail } from '../threepid/address.js';

/** The one path a push gateway URL may have (push gateway API, POST /_matrix/push/v1/notify). */
export const NOTIFY_PATH = '/_matrix/push/v1/notify';
export const MAX_APP_ID_CHARS = 64;
export const MAX_PUSHKEY_BYTES = 512;
const KINDS = ['http', 'email'] as const;
/** The app ID of the email pushers made at registration, as Synapse names it. */
export const EMAIL_APP_ID = 'm.email';

/** POST /pushers/set, as checked at the edge. */
export interface SetPusherRequest {
  kind: string | null;
  app_id: string;
  pushkey: string;
  app_display_name?: string;
  device_display_name?: string;
  profile_tag?: string;
  lang?: string;
  data?: JsonObject;
  append?: boolean;
}

/** A pusher as GET /pushers answers it. */
export interface PusherView {
  pushkey: string;
  kind: string;
  app_id: string;
  app_display_name: string;
  device_display_name: string;
  profile_tag?: string;
  lang: string;
  data: JsonObject;
}

export function pusherView(row: PusherRow): PusherView {
  return {
    pushkey: row.pushkey,
    kind: row.kind,
    app_id: row.app_id,
    app_display_name: row.app_display_name,
    device_display_name: row.device_display_name,
    ...(row.profile_tag !== null ? { profile_tag: row.profile_tag } : {}),
    lang: row.lang,
    data: JSON.parse(row.data) as JsonObject,
  };
}

/** A gateway URL: http(s), no credentials, with the notify path and nothing after it. */
function checkGatewayUrl(url: unknown): void {
  if (url === undefined) throw new MatrixError(400, 'M_MISSING_PARAM', "'url' is required in data for an http pusher");
  if (typeof url !== 'string') throw invalidParam("'data.url' must be a string");
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalidParam("'data.url' is not a valid URL");
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw invalidParam("'data.url' must be an http or https URL");
  if (parsed.username !== '' || parsed.password !== '') throw invalidParam("'data.url' must not carry credentials");
  if (parsed.pathname !== NOTIFY_PATH || parsed.hash !== '') throw invalidParam(`'data.url' must have the path ${NOTIFY_PATH}`);
}

/** Each user's pushers: where their notifications are sent. */
export class PusherService {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  /**
   * The email pusher Synapse gives an account registered with an email address (notif_for_new_users),
   * tied to the registration's device, in the registering transaction.
   */
  async addForNewUser(work: Store, userId: string, deviceId: string, address: string): Promise<void> {
    await work.pushers.upsert({
      user_id: userId,
      app_id: EMAIL_APP_ID,
      pushkey: address,
      kind: 'email',
      app_display_name: 'Email Notifications',
      device_display_name: address,
      profile_tag: null,
      lang: 'en',
      data: '{}',
      device_id: deviceId,
      pushkey_ts: this.clock.now(),
      mailed_pos: await work.streams.head(),
    });
  }

  async list(userId: string): Promise<PusherView[]> {
    return (await this.store.pushers.list(userId)).map(pusherView);
  }

  async set(requester: Requester, request: SetPusherRequest): Promise<void> {
    const { userId } = requester;
    if (request.app_id.length > MAX_APP_ID_CHARS) throw invalidParam(`'app_id' is longer than ${MAX_APP_ID_CHARS} characters`);
    if (Buffer.byteLength(request.pushkey) > MAX_PUSHKEY_BYTES) throw invalidParam(`'pushkey' is longer than ${MAX_PUSHKEY_BYTES} bytes`);
    if (request.kind === null) {
      await this.store.pushers.delete(userId, request.app_id, request.pushkey);
      return;
    }
    const missing = (['app_display_name', 'device_display_name', 'lang', 'data'] as const).filter((field) => request[field] === undefined);
    if (missing.length > 0) throw new MatrixError(400, 'M_MISSING_PARAM', `Missing parameters: ${missing.join(', ')}`);
    if (!(KINDS as readonly string[]).includes(request.kind)) throw invalidParam(`Unknown pusher kind: ${request.kind}`);
    const data = request.data!;
    let pushkey = request.pushkey;
    if (request.kind === 'http') {
      checkGatewayUrl(data.url);
    } else {
      // As Synapse: an email pusher sends to one of the account's own verified addresses.
      pushkey = canonicaliseEmail(pushkey);
      if ((await this.store.threepids.findUser('email', pushkey)) !== userId) throw new MatrixError(400, 'M_THREEPID_NOT_FOUND', 'That email address is not one of your addresses');
    }
    if (data.format !== undefined && typeof data.format !== 'string') throw invalidParam("'data.format' must be a string");
    const row: PusherRow = {
      user_id: userId,
      app_id: request.app_id,
      pushkey,
      kind: request.kind,
      app_display_name: request.app_display_name!,
      device_display_name: request.device_display_name!,
      profile_tag: request.profile_tag ?? null,
      lang: request.lang!,
      data: JSON.stringify(data),
      device_id: requester.deviceId,
      pushkey_ts: this.clock.now(),
      // As Synapse: a new email pusher mails only what notifies from now on.
      mailed_pos: request.kind === 'email' ? await this.store.streams.head() : null,
    };
    await this.store.transaction(async (tx) => {
      await tx.pushers.upsert(row);
      if (!request.append) await tx.pushers.deleteForOtherUsers(userId, request.app_id, pushkey);
    });
  }
}
