import { missingParam, unrecognized } from '../../errors.js';
import type { Router } from '../../http/router.js';
import type { Services } from '../../services/index.js';
import { objectBody, optionalBoolean } from '../../validate.js';

export function pushRuleRoutes(router: Router, { pushRules }: Services): void {
  const rules = pushRules;
  router.authed('GET', '/pushrules/', async ({ requester }) => ({ global: await rules.ruleset(requester.userId) }));
  router.authed('GET', '/pushrules/global/', async ({ requester }) => rules.ruleset(requester.userId));
  // Not in the spec, but Synapse answers it (the kind's rules, as an array) and clients still call it.
  router.authed('GET', '/pushrules/global/:kind/', async ({ requester, params }) => rules.rulesOfKind(requester.userId, params.kind!));

  const path = '/pushrules/global/:kind/:ruleId';
  router.authed('GET', path, async ({ requester, params }) => rules.getRule(requester.userId, params.kind!, params.ruleId!));
  router.authed('PUT', path, async ({ requester, params, body, query }) => {
    await rules.putRule(requester.userId, params.kind!, params.ruleId!, objectBody(body), query.before, query.after);
    return {};
  });
  router.authed('DELETE', path, async ({ requester, params }) => {
    await rules.deleteRule(requester.userId, params.kind!, params.ruleId!);
    return {};
  });

  router.authed('GET', `${path}/enabled`, async ({ requester, params }) => ({
    enabled: (await rules.getRule(requester.userId, params.kind!, params.ruleId!)).enabled,
  }));
  router.authed('PUT', `${path}/enabled`, async ({ requester, params, body }) => {
    const enabled = optionalBoolean(objectBody(body), 'enabled');
    if (enabled === undefined) throw missingParam('enabled');
    await rules.setEnabled(requester.userId, params.kind!, params.ruleId!, enabled);
    return {};
  });

  router.authed('GET', `${path}/actions`, async ({ requester, params }) => ({
    actions: (await rules.getRule(requester.userId, params.kind!, params.ruleId!)).actions,
  }));
  router.authed('PUT', `${path}/actions`, async ({ requester, params, body }) => {
    await rules.setActions(requester.userId, params.kind!, params.ruleId!, objectBody(body).actions);
    return {};
  });

  // Any other path under /pushrules (no trailing slash, unknown scope, missing rule ID, unknown
  // attribute) is a malformed push rule request: 400 M_UNRECOGNIZED, as Synapse answers, not 404/405.
  const malformed = async () => {
    throw unrecognized(400, 'Unrecognised push rule request');
  };
  for (const method of ['GET', 'PUT', 'DELETE'] as const) {
    router.authed(method, '/pushrules', malformed);
    router.authed(method, '/pushrules/*', malformed);
  }
}
