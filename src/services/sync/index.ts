import type { Config } from '../../config/index.js';
import type { Store } from '../../storage/index.js';
import { StreamChannel } from '../../storage/stream-channel.js';
import { Notifier } from './notifier.js';

/** The notifier that wakes waiting syncs; on PostgreSQL it also hears (and tells) the other processes. */
export function createNotifier(config: Config, store: Store): Notifier {
  const notifier = new Notifier();
  if ('host' in config.database.args) {
    const channel = new StreamChannel(
      store.db.kysely,
      config.database.args,
      notifier.origin,
      (notice) => notifier.wakeLocal(notice),
      () => notifier.wakeAll(),
    );
    notifier.attach(channel);
    void channel.start();
  }
  return notifier;
}
