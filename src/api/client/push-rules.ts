import { z } from 'zod';
import { unrecognized } from '../../errors.js';
import type { Router } from '../../http/router.js';
import { optional, parseBody, parseQuery } from '../../http/parse.js';
import type { Services } from '../../services/index.js';
import { checkRulePath } from '../../services/push-rules/push-rules.js';
import { asSent } from '../../http/common-schemas.js';

/**
 * Actions that the spec retired. "Clients and homeservers MUST ignore these actions, for instance,
 * by stripping them": accepted and stored as sent (so they read back as set, as in Synapse), and to
 * be ignored when rules are evaluated.
 */
const HISTORICAL_ACTIONS = ['dont_notify', 'coalesce'] as const;

/** An action: "notify" (or a retired one), or a tweak object; stored as sent. */
const Action = asSent(z.union([z.enum(['notify', ...HISTORICAL_ACTIONS]), z.looseObject({ set_tweak: z.string() })]));
const Actions = z.array(Action);

const Condition = asSent(
  z.looseObject({
    kind: z.string(),
    key: z.string().optional(),
    pattern: z.string().optional(),
    is: z.string().optional(),
    value: z.union([z.string(), z.number(), z.boolean(), z.null()]).optional(),
  }),
);

const PushRuleBody = z.object({ actions: Actions, conditions: optional(z.array(Condition)), pattern: optional(z.string()) });
const RulePosition = z.object({ before: optional(z.string()), after: optional(z.string()) });
const EnabledBody = z.object({ enabled: z.boolean() });
const ActionsBody = z.object({ actions: Actions });

export function pushRuleRoutes(router: Router, { pushRules }: Services): void {
  const rules = pushRules;
  router.authed('GET', '/pushrules/', async ({ requester }) => ({ global: await rules.ruleset(requester.userId) }));
  router.authed('GET', '/pushrules/global/', async ({ requester }) => rules.ruleset(requester.userId));
  // Not in the spec, but Synapse answers it (the kind's rules, as an array) and clients still call it.
  router.authed('GET', '/pushrules/global/:kind/', async ({ requester, params }) => rules.rulesOfKind(requester.userId, params.kind!));

  // On a PUT the path is checked before the body: a malformed path is M_UNRECOGNIZED whatever the body.
  const path = '/pushrules/global/:kind/:ruleId';
  router.authed('GET', path, async ({ requester, params }) => rules.getRule(requester.userId, params.kind!, params.ruleId!));
  router.authed('PUT', path, async ({ requester, params, body, query }) => {
    checkRulePath(params.kind!, params.ruleId!);
    await rules.putRule(requester.userId, params.kind!, params.ruleId!, parseBody(PushRuleBody, body), parseQuery(RulePosition, query));
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
    checkRulePath(params.kind!, params.ruleId!);
    await rules.setEnabled(requester.userId, params.kind!, params.ruleId!, parseBody(EnabledBody, body).enabled);
    return {};
  });

  router.authed('GET', `${path}/actions`, async ({ requester, params }) => ({
    actions: (await rules.getRule(requester.userId, params.kind!, params.ruleId!)).actions,
  }));
  router.authed('PUT', `${path}/actions`, async ({ requester, params, body }) => {
    checkRulePath(params.kind!, params.ruleId!);
    await rules.setActions(requester.userId, params.kind!, params.ruleId!, parseBody(ActionsBody, body).actions);
    return {};
  });

  // Any other path under /pushrules/ (unknown scope, missing rule ID, unknown attribute, a scope or
  // kind without its trailing slash) is a malformed push rule request: 400 M_UNRECOGNIZED, as Synapse
  // answers, not 404/405. Bare /pushrules is no push-rule path at all, so it stays 404 (Synapse too).
  const malformed = async () => {
    throw unrecognized(400, 'Unrecognised push rule request');
  };
  for (const method of ['GET', 'PUT', 'DELETE'] as const) {
    router.authed(method, '/pushrules/*', malformed);
  }
}
