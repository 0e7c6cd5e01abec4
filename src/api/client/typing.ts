import { z } from 'zod';
import { invalidParam } from '../../errors.js';
import { optional, parseBody } from '../../http/parse.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { isRoomId, isUserId } from '../../services/user-ids.js';

const TypingBody = z.object({
  typing: z.boolean(),
  /** Milliseconds; capped by the service, as Synapse caps it. */
  timeout: optional(z.number().int().nonnegative()),
});

export function typingRoutes(router: Router, { typing }: Services): void {
  router.authed('PUT', '/rooms/:roomId/typing/:userId', async ({ requester, params, body }) => {
    const roomId = params.roomId!;
    if (!isRoomId(roomId)) throw invalidParam('Invalid room ID');
    const userId = params.userId!;
    if (!isUserId(userId)) throw invalidParam('Invalid user ID');
    const { typing: isTyping, timeout } = parseBody(TypingBody, body);
    await typing.set(requester.userId, userId, roomId, isTyping, timeout);
    return {};
  });
}
