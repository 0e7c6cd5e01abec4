import type { Clock } from '../clock.js';
import type { Config } from '../config/index.js';
import { MatrixError, notFound } from '../errors.js';
import type { Store } from '../storage/index.js';
import type { Requester } from './devices.js';
import type { RateLimiter } from './ratelimiter.js';
import type { RoomReadService } from './rooms/room-reads.js';

/** Reports of events and rooms by users (the spec's "Reporting content"), stored for the server's admins. */
export class ReportService {
  constructor(
    private readonly store: Store,
    private readonly reads: RoomReadService,
    private readonly limiter: RateLimiter,
    private readonly clock: Clock,
    private readonly config: Config,
  ) {}

  /**
   * M_NOT_FOUND, as the spec words it, when the event does not exist, the reporter is not joined to
   * the room, or the event is one they may not see.
   */
  async reportEvent(requester: Requester, roomId: string, eventId: string, reason: string | undefined, score: number | undefined): Promise<void> {
    const refused = () => notFound('The event was not found or you are not joined to the room');
    if ((await this.store.rooms.member(roomId, requester.userId))?.membership !== 'join') throw refused();
    const event = await this.reads.event(requester, roomId, eventId).catch((err: unknown) => {
      throw err instanceof MatrixError && (err.status === 403 || err.status === 404) ? refused() : err;
    });
    await this.store.transaction(async (tx) => {
      await this.limiter.take(`message:${requester.userId}`, this.config.rc_message, tx.rateLimits);
      await tx.reports.addEventReport({ received_ts: this.clock.now(), room_id: roomId, event_id: eventId, user_id: requester.userId, reason: reason ?? null, score: score ?? null, sender: event.sender });
    });
  }

  /** Any user may report a room they know of; M_NOT_FOUND for a room this server does not have. */
  async reportRoom(requester: Requester, roomId: string, reason: string): Promise<void> {
    if (!(await this.store.rooms.get(roomId))) throw notFound('The room was not found');
    await this.store.transaction(async (tx) => {
      await this.limiter.take(`message:${requester.userId}`, this.config.rc_message, tx.rateLimits);
      await tx.reports.addRoomReport({ received_ts: this.clock.now(), room_id: roomId, user_id: requester.userId, reason });
    });
  }
}
