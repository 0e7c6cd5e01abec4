import { createHmac, hkdfSync } from 'node:crypto';
import { constantTimeEqual } from '../../crypto/tokens.js';
import type { Store } from '../../storage/index.js';
import type { EmailPusherKey } from '../../storage/email-notifs.js';

/** Synapse's path of the link in every notification mail that deletes its pusher. */
export const UNSUBSCRIBE_PATH = '/_synapse/client/unsubscribe';
const VERSION = 'v1';
const MAX_TOKEN_CHARS = 1024;

/**
 * The unsubscribe links of notification mails, as Synapse makes them (`access_token`, `app_id`,
 * `pushkey`), with a token of Myelin's own in place of Synapse's macaroon: the user ID and an
 * HMAC of user, app ID and pushkey under a key derived from the delivery secret. It opens no
 * session and works only for the pusher it names; a wrong token and a pusher that is gone look
 * the same from outside.
 */
export class EmailUnsubscribe {
  private readonly key: Buffer;

  constructor(
    private readonly store: Store,
    secret: string | Buffer,
    /** The server's public base URL, ending in '/'. */
    private readonly publicBaseUrl: string,
  ) {
    this.key = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), 'myelin unsubscribe link', 32));
  }

  link(pusher: EmailPusherKey): string {
    const params = new URLSearchParams({ access_token: this.token(pusher), app_id: pusher.app_id, pushkey: pusher.pushkey });
    return `${this.publicBaseUrl.replace(/\/+$/, '')}${UNSUBSCRIBE_PATH}?${params.toString()}`;
  }

  /** The user whose pusher the link names, when its token is genuine; undefined otherwise. */
  check(token: string, appId: string, pushkey: string): string | undefined {
    if (token.length > MAX_TOKEN_CHARS) return undefined;
    const [version, user, mac, ...rest] = token.split('.');
    if (version !== VERSION || user === undefined || mac === undefined || rest.length > 0) return undefined;
    const userId = Buffer.from(user, 'base64url').toString('utf8');
    return constantTimeEqual(mac, this.mac({ user_id: userId, app_id: appId, pushkey })) ? userId : undefined;
  }

  /** Deletes the pusher the link names; false when the token is not genuine (a pusher already gone is done). */
  async unsubscribe(token: string, appId: string, pushkey: string): Promise<boolean> {
    const userId = this.check(token, appId, pushkey);
    if (userId === undefined) return false;
    await this.store.pushers.delete(userId, appId, pushkey);
    return true;
  }

  private token(pusher: EmailPusherKey): string {
    return `${VERSION}.${Buffer.from(pusher.user_id, 'utf8').toString('base64url')}.${this.mac(pusher)}`;
  }

  private mac(pusher: EmailPusherKey): string {
    return createHmac('sha256', this.key).update(JSON.stringify([VERSION, pusher.user_id, pusher.app_id, pusher.pushkey]), 'utf8').digest('base64url');
  }
}
