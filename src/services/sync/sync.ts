import { performance } from 'node:perf_hooks';
import { invalidParam } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import type { JsonObject } from '../../validate.js';
import type { Requester } from '../devices.js';
import type { E2eKeyService } from '../e2ee/e2e-keys.js';
import { applyEventFilter, type Filter, type FilterService } from './filters.js';
import type { Notifier } from './notifier.js';
import type { PresenceService, PresenceState } from '../presence.js';
import type { PushRuleService } from '../push-rules/push-rules.js';
import { encodeSyncToken, tokenPosition } from './sync-token.js';
import type { RoomsSync } from './rooms-sync.js';

/** To-device messages per response; the rest follow in the next sync. */
const TO_DEVICE_LIMIT = 100;

/** A parsed /sync query: a since token (still unchecked), the wait, and the filter as given. */
export interface SyncRequest {
  since?: string;
  timeoutMs: number;
  fullState: boolean;
  setPresence: PresenceState;
  /** A stored filter's ID, or inline filter JSON. */
  filter?: string;
}

interface Batch {
  body: JsonObject;
  hasNews: boolean;
  /** The rooms the user is joined to: a long-poll waits on them. */
  joinedRoomIds: string[];
}

/**
 * GET /sync: rooms (rooms-sync.ts), the account's global account data, to-device messages,
 * device-list changes, key counts and presence. An incremental sync with nothing new waits on the
 * notifier, woken by changes for the user or in one of the user's rooms.
 */
export class SyncService {
  constructor(
    private readonly store: Store,
    private readonly notifier: Notifier,
    private readonly filters: FilterService,
    private readonly pushRules: PushRuleService,
    private readonly keys: E2eKeyService,
    private readonly presence: PresenceService,
    private readonly rooms: RoomsSync,
  ) {}

  async sync(requester: Requester, request: SyncRequest): Promise<JsonObject> {
    let since: number | undefined;
    if (request.since !== undefined) {
      since = await tokenPosition(request.since, requester.userId, this.store.streams);
      if (since === undefined) throw invalidParam('Invalid since token');
    }
    const { fullState, setPresence, timeoutMs: timeout } = request;
    const filter = await this.filters.resolve(requester.userId, request.filter);
    await this.presence.touch(requester.userId, setPresence);

    // Messages up to `since` were delivered: the client has them. Once per request, not per wake-up.
    if (since !== undefined) await this.store.toDevice.acknowledge(requester.userId, requester.deviceId, since);

    if (since === undefined || fullState || timeout === 0) return (await this.batch(requester, since, filter, fullState)).body;
    return this.notifier.track(() => this.longPoll(requester, since, filter, timeout));
  }

  private async longPoll(requester: Requester, since: number, filter: Filter | undefined, timeout: number): Promise<JsonObject> {
    const deadline = performance.now() + timeout;
    // The rooms to listen to are read before the first subscription; a later join wakes the user anyway.
    let roomIds = await this.rooms.joinedRoomIds(requester.userId);
    for (;;) {
      // Subscribe before reading, so that a change committed in between still wakes us.
      const subscription = this.notifier.subscribe(requester.userId, roomIds);
      try {
        const batch = await this.batch(requester, since, filter, false);
        const remaining = deadline - performance.now();
        if (batch.hasNews || remaining <= 0 || this.notifier.isClosed) return batch.body;
        roomIds = batch.joinedRoomIds;
        await subscription.wait(remaining);
      } finally {
        subscription.dispose();
      }
    }
  }

  private async batch(requester: Requester, since: number | undefined, filter: Filter | undefined, fullState: boolean): Promise<Batch> {
    const { userId, deviceId } = requester;
    const repos = this.store;
    const head = await repos.streams.head();
    const after = Math.min(since ?? 0, head);

    const messages = await repos.toDevice.pending(userId, deviceId, after, head, TO_DEVICE_LIMIT);
    const upto = messages.length === TO_DEVICE_LIMIT ? messages[messages.length - 1]!.stream_pos : head;
    const initial = since === undefined || fullState;

    const rows = await repos.accountData.changed(userId, initial ? 0 : after, upto);
    const events: { type: string; content: JsonObject }[] = [];
    for (const row of rows) {
      if (row.room_id !== '' || row.type === 'm.push_rules') continue;
      events.push({ type: row.type, content: JSON.parse(row.content) as JsonObject });
    }
    if (initial || rows.some((r) => r.room_id === '' && r.type === 'm.push_rules')) {
      events.push({ type: 'm.push_rules', content: await this.pushRules.accountDataContent(userId) });
    }
    const accountData = applyEventFilter(events, filter?.account_data);
    const rooms = await this.rooms.sync({
      userId,
      deviceId,
      after: since === undefined ? undefined : after,
      upto,
      fullState,
      filter,
      roomAccountData: rows.filter((r) => r.room_id !== ''),
    });
    const left = rooms.deviceLists.left;
    const changed = since === undefined ? [] : [...new Set([...(await repos.keys.deviceListChanges(userId, after, upto)), ...rooms.deviceLists.changed])].filter((u) => !left.includes(u));
    const presence = applyEventFilter(await this.presence.syncEvents(userId, initial ? undefined : after, upto, rooms.deviceLists.changed), filter?.presence);

    const body: JsonObject = {
      next_batch: encodeSyncToken(upto),
      account_data: { events: accountData },
      to_device: { events: messages.map((m) => ({ sender: m.sender, type: m.type, content: JSON.parse(m.content) as JsonObject })) },
      device_lists: { changed, left },
      device_one_time_keys_count: await this.keys.counts(userId, deviceId),
      device_unused_fallback_key_types: await repos.keys.unusedFallbackKeyTypes(userId, deviceId),
      presence: { events: presence },
      rooms: rooms.rooms,
    };
    const hasNews = accountData.length > 0 || messages.length > 0 || changed.length > 0 || left.length > 0 || presence.length > 0 || rooms.hasNews;
    return { body, hasNews, joinedRoomIds: rooms.joinedRoomIds };
  }
}
