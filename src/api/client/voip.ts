import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { turnCredentials } from '../../services/voip/turn.js';

export function voipRoutes(router: Router, { config, clock }: Services): void {
  router.authed('GET', '/voip/turnServer', async ({ requester }) => turnCredentials(config, requester.userId, requester.isGuest, clock.now()));
}
