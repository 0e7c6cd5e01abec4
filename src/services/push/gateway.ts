import type { Logger } from 'pino';
import { PermanentDeliveryError, maskRecipient, type DeliveryChannel } from '../../delivery/index.js';
import type { Store } from '../../storage/index.js';
import type { PushMessage } from './notification.js';

const TIMEOUT_MS = 15_000;

/**
 * The outbox channel that POSTs queued pushes to push gateways. A gateway that cannot be reached,
 * times out, answers 5xx, 408 or 429 has the push retried with the outbox's backoff; any other 4xx
 * is final. Pushkeys the gateway names as `rejected` lose their pusher, as the spec asks. A push
 * whose pusher was deleted after it was queued is dropped unsent.
 */
export function pushGatewayChannel(store: Store): DeliveryChannel {
  return {
    // Pushes are queued already rendered, by the push processor.
    render: (request) => request,
    provider: (logger: Logger) => ({
      describe: (payload) => {
        const message = payload as PushMessage;
        let gateway = '';
        try {
          gateway = new URL(message.url).host;
        } catch {
          // Checked when the pusher was set; an unparseable URL fails at send.
        }
        return { gateway, app_id: message.app_id, pushkey: maskRecipient(message.pushkey) };
      },
      async send(payload) {
        const message = payload as PushMessage;
        if (!(await store.pushers.exists(message.user_id, message.app_id, message.pushkey))) return;
        let res: Response;
        try {
          res = await fetch(message.url, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(message.body),
            signal: AbortSignal.timeout(TIMEOUT_MS),
            redirect: 'error',
          });
        } catch (err) {
          throw new Error(`push gateway unreachable: ${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}`);
        }
        const text = await res.text().catch(() => '');
        if (!res.ok) {
          const retry = res.status >= 500 || res.status === 408 || res.status === 429;
          const error = `push gateway answered ${res.status}`;
          throw retry ? new Error(error) : new PermanentDeliveryError(error);
        }
        let rejected: unknown;
        try {
          rejected = (JSON.parse(text) as { rejected?: unknown }).rejected;
        } catch {
          rejected = undefined;
        }
        if (Array.isArray(rejected) && rejected.includes(message.pushkey)) {
          await store.pushers.delete(message.user_id, message.app_id, message.pushkey);
          logger.info({ app_id: message.app_id, pushkey: maskRecipient(message.pushkey) }, 'push: the gateway rejected a pushkey; its pusher is deleted');
        }
      },
    }),
  };
}
