import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { Store } from '../storage/index.js';
import type { ChannelRenderer } from './channels.js';
import type { PayloadSeal } from './payload-seal.js';
import type { DeliveryRequest, EnqueueOptions, Outbox } from './types.js';

/** Renders messages and queues them in the database; the worker sends them. */
export class DeliveryOutbox implements Outbox {
  constructor(
    private readonly store: Store,
    /** Encrypts the rendered message: it holds live links and codes until it is sent. */
    private readonly seal: PayloadSeal,
    /** Called once a queued message is committed, to have the worker look at once. */
    private readonly onQueued: () => void,
    /** The worker's clock: a message is due from when it is queued. */
    private readonly clock: Clock,
    private readonly renderers = new Map<string, ChannelRenderer>(),
  ) {}

  /** This outbox queueing in `work`, a caller's transaction: the message exists exactly when the caller's rows do. */
  within(work: Store): DeliveryOutbox {
    return work === this.store ? this : new DeliveryOutbox(work, this.seal, this.onQueued, this.clock, this.renderers);
  }

  addChannel(channel: string, render: ChannelRenderer): void {
    this.renderers.set(channel, render);
  }

  /** Whether messages of this channel can be queued (e.g. 'email' only when email is configured). */
  hasChannel(channel: string): boolean {
    return this.renderers.has(channel);
  }

  /** The channels messages can be queued for in this process. */
  channels(): string[] {
    return [...this.renderers.keys()];
  }

  async enqueue(request: DeliveryRequest, options: EnqueueOptions = {}): Promise<boolean> {
    const render = this.renderers.get(request.channel);
    if (!render) throw new Error(`delivery channel '${request.channel}' is not configured`);
    const id = randomUUID();
    const payload = this.seal.seal(id, JSON.stringify(render(request)));
    const queued = await this.store.outbox.insert({ id, channel: request.channel, dedupeKey: options.dedupeKey, payload, now: this.clock.now() });
    if (queued) this.store.afterCommit(this.onQueued);
    return queued;
  }
}
