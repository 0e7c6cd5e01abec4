import { performance } from 'node:perf_hooks';
import { invalidParam } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import { ROOMS, SyncAccountRepo } from '../../storage/sync-account.js';
import type { JsonObject } from '../../validate.js';
import type { Requester } from '../devices.js';
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
}

/**
 * GET /sync: rooms (rooms-sync.ts), the account's global account data, to-device messages,
 * device-list changes, key counts and presence. An incremental sync with nothing new waits on the
 * notifier, woken by changes for the user or in one of the user's rooms.
 */
export class SyncService {
  private readonly account: SyncAccountRepo;

  constructor(
    private readonly store: Store,
    private readonly notifier: Notifier,
    private readonly filters: FilterService,
    private readonly pushRules: PushRuleService,
    private readonly presence: PresenceService,
    private readonly rooms: RoomsSync,
  ) {
    this.account = new SyncAccountRepo(store.db.kysely, store.db.engine);
  }

  async sync(requester: Requester, request: SyncRequest): Promise<JsonObject> {
    let since: number | undefined;
    if (request.since !== undefined) {
      since = await tokenPosition(request.since, requester.userId, this.store.streams);
      if (since === undefined) throw invalidParam('Invalid since token');
    }
    const { fullState, setPresence, timeoutMs: timeout } = request;
    const filter = await this.filters.resolve(requester.userId, request.filter);
    await this.presence.touch(requester.userId, setPresence);

    // Messages up to `since` were delivered: the client has them. Acknowledged by the first read, not per wake-up.
    const acknowledged = since ?? -1;
    if (since === undefined || fullState || timeout === 0) return (await this.batch(requester, since, filter, fullState, acknowledged)).body;
    return this.notifier.track(() => this.longPoll(requester, since, filter, timeout));
  }

  private async longPoll(requester: Requester, since: number, filter: Filter | undefined, timeout: number): Promise<JsonObject> {
    const deadline = performance.now() + timeout;
    for (let acknowledged = since; ; acknowledged = -1) {
      // Subscribe before reading, so that a change committed in between still wakes us. The rooms
      // to listen to are read only when there is nothing to answer yet; a room changed meanwhile
      // is remembered by the subscription, and a later join or leave wakes the user anyway.
      const subscription = this.notifier.subscribeBeforeRooms(requester.userId);
      try {
        const batch = await this.batch(requester, since, filter, false, acknowledged);
        const remaining = deadline - performance.now();
        if (batch.hasNews || remaining <= 0 || this.notifier.isClosed) return batch.body;
        subscription.listen(await this.rooms.joinedRoomIds(requester.userId));
        await subscription.wait(deadline - performance.now());
      } finally {
        subscription.dispose();
      }
    }
  }

  /** `acknowledged`: the request's since token, whose to-device messages the client has (-1: none). */
  private async batch(requester: Requester, since: number | undefined, filter: Filter | undefined, fullState: boolean, acknowledged: number): Promise<Batch> {
    const { userId, deviceId } = requester;
    const initial = since === undefined || fullState;
    const snapshot = await this.account.snapshot({
      userId,
      deviceId,
      after: since ?? 0,
      accountDataAfter: initial ? 0 : (since ?? 0),
      toDeviceLimit: TO_DEVICE_LIMIT,
      acknowledged,
      rooms: since === undefined ? ROOMS.all : fullState ? ROOMS.joined : ROOMS.changed,
      presenceAfter: initial ? -1 : (since ?? 0),
    });
    const head = snapshot.head;
    const after = Math.min(since ?? 0, head);

    const messages = snapshot.toDevice;
    const upto = messages.length === TO_DEVICE_LIMIT ? messages[messages.length - 1]!.stream_pos : head;

    const rows = snapshot.accountData.filter((r) => r.stream_pos <= upto);
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
      memberships: snapshot.memberships,
    });
    const left = rooms.deviceLists.left;
    const deviceListChanges = snapshot.deviceLists.filter((d) => d.stream_pos <= upto).map((d) => d.user_id);
    const changed = since === undefined ? [] : [...new Set([...deviceListChanges, ...rooms.deviceLists.changed])].filter((u) => !left.includes(u));
    const presence = applyEventFilter(await this.presence.syncEventsOf(snapshot.presence, userId, initial ? undefined : after, upto, rooms.deviceLists.changed, snapshot.matesPresence), filter?.presence);

    const body: JsonObject = {
      next_batch: encodeSyncToken(upto),
      account_data: { events: accountData },
      to_device: { events: messages.map((m) => ({ sender: m.sender, type: m.type, content: JSON.parse(m.content) as JsonObject })) },
      device_lists: { changed, left },
      device_one_time_keys_count: { signed_curve25519: 0, ...snapshot.oneTimeKeyCounts },
      device_unused_fallback_key_types: snapshot.unusedFallbackKeyTypes,
      presence: { events: presence },
      rooms: rooms.rooms,
    };
    const hasNews = accountData.length > 0 || messages.length > 0 || changed.length > 0 || left.length > 0 || presence.length > 0 || rooms.hasNews;
    return { body, hasNews };
  }
}
