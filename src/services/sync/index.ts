import type { Config } from '../../config/index.js';
import type { Store } from '../../storage/index.js';
import { StreamChannel } from '../../storage/stream-channel.js';
import type { TokenCache } from '../token-cache.js';
import { Notifier } from './notifier.js';

/**
 * The notifier that wakes waiting syncs; on PostgreSQL it also hears (and tells) the other
 * processes, and its LISTEN connection carries the access-token cache's notices too.
 */
export function createNotifier(config: Config, store: Store, tokenCache?: TokenCache): Notifier {
  const notifier = new Notifier();
  if ('host' in config.database.args) {
    const channel = new StreamChannel(
      store.db.kysely,
      config.database.args,
      notifier.origin,
      (notice) => notifier.wakeLocal(notice),
      () => notifier.wakeAll(),
      tokenCache,
    );
    notifier.attach(channel);
    void channel.start();
  }
  return notifier;
}
