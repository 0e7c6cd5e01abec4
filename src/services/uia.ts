import { z } from 'zod';
import { isObject, type JsonObject } from '../validate.js';
import type { Clock } from '../clock.js';
import { randomToken } from '../crypto/tokens.js';
import { MatrixError, forbidden, unknown } from '../errors.js';
import type { UiaSessionsRepo } from '../storage/uia.js';
import { sortedJson } from './rooms/canonical-json.js';
import type { ValidatedThreepid } from './threepid/validation-sessions.js';

/**
 * The operations UIA guards: a closed set, so that the operation a session was opened for and the
 * one it is used for are always spelt the same way. The strings are what sessions store.
 */
export const Operation = {
  register: 'POST /register',
  changePassword: 'POST /account/password',
  resetPassword: 'POST /account/password (reset)',
  deactivate: 'POST /account/deactivate',
  addThreepid: 'POST /account/3pid/add',
  addThreepidLegacy: 'POST /account/3pid',
  deleteDevices: 'POST /delete_devices',
  deleteDevice: (deviceId: string) => `DELETE /devices/${deviceId}` as const,
  uploadCrossSigningKeys: 'POST /keys/device_signing/upload',
} as const;

type Operations = typeof Operation;
export type UiaOperation = { [K in keyof Operations]: Operations[K] extends (...args: never[]) => infer R ? R : Operations[K] }[keyof Operations];

/** The UIA `auth` dict as the edge parsed it: type and session, with each stage's own fields left to the stage. */
export interface AuthDict {
  type?: string | undefined;
  session?: string | undefined;
  [field: string]: unknown;
}

/** What a completed stage established, kept in the session. */
export type StageResult =
  /** m.login.password: whose password it was. */
  | { user_id: string }
  /** m.login.email.identity / m.login.msisdn: the 3PID whose validation session it used. */
  | { threepid: ValidatedThreepid }
  /** m.login.dummy: nothing. */
  | Record<string, never>;

const StoredThreepid = z.object({ medium: z.enum(['email', 'msisdn']), address: z.string(), validated_ts: z.number() });
const StoredResult = z.union([z.strictObject({ user_id: z.string() }), z.strictObject({ threepid: StoredThreepid }), z.strictObject({})]);

/** A session's stored results; one that does not read as a stage result counts as not done. */
function readResults(json: string): Record<string, StageResult> {
  const results: Record<string, StageResult> = {};
  const stored: unknown = JSON.parse(json);
  if (!isObject(stored)) return results;
  for (const [type, value] of Object.entries(stored)) {
    const parsed = StoredResult.safeParse(value);
    if (parsed.success) results[type] = parsed.data as StageResult;
  }
  return results;
}

/** The 3PIDs the completed stages validated. */
export function validatedThreepids(results: Record<string, StageResult>): ValidatedThreepid[] {
  return Object.values(results).flatMap((result) => ('threepid' in result ? [result.threepid] : []));
}

export interface StageContext {
  sessionId: string;
  /** The operation the session is bound to. */
  operation: UiaOperation;
  /** The authenticated user, for operations on an existing account. */
  userId?: string;
  ip: string;
}

/** One kind of UIA stage. Stages register themselves with the engine, so new kinds plug in. */
export interface UiaStage {
  readonly type: string;
  /** The `params` entry advertised for this stage, if any. */
  params?(): Record<string, unknown> | undefined;
  /** Checks the auth dict (reading its own fields); throws a MatrixError when it does not pass. */
  check(auth: AuthDict, ctx: StageContext): Promise<StageResult>;
}

/**
 * A request's parameters as a UIA session remembers them. As in Synapse, a later request of the
 * session that brings none is taken to mean the remembered ones; one that brings some replaces them.
 */
export interface UiaParams<P> {
  /** The request's body without `auth` and without secrets, as sent: what the session stores. */
  raw: JsonObject;
  /** Reads parameters (this request's or remembered ones) with the endpoint's schema. */
  read: (raw: JsonObject) => P;
}

/** The parameters of a request whose operation reads none of them (they still tell a retry apart). */
export function unreadParams(body: unknown, ...secrets: string[]): UiaParams<undefined> {
  return { raw: uiaParams(body, ...secrets), read: () => undefined };
}

export interface UiaRequest<P> {
  auth: AuthDict | undefined;
  operation: UiaOperation;
  userId?: string;
  flows: string[][];
  ip: string;
  params: UiaParams<P>;
  /** Hashes a password the request carries, so that later requests may leave it out (never stored in clear). */
  hashSecret?: () => Promise<string>;
}

/** A session whose flow is complete. */
export interface UiaOutcome<P> {
  sessionId: string;
  results: Record<string, StageResult>;
  /** The parameters in force: this request's, or the session's remembered ones. */
  params: P;
  /** The hash of a password an earlier request of the session carried. */
  secretHash?: string;
}

/** A retry of the request that completed the session: what the operation answered then. */
export interface UiaReplay {
  sessionId: string;
  results: Record<string, StageResult>;
  recorded: JsonObject;
}

/** How `perform` runs an operation behind UIA. */
export interface GuardedOperation<P, A> {
  /** What must hold before the session is used up; a refusal here leaves the session open for another try. */
  check?(outcome: UiaOutcome<P>): Promise<void>;
  /** The operation; runs at most once per session. */
  run(outcome: UiaOutcome<P>): Promise<A>;
  /** What a retry of the completing request is answered from (nothing secret); by default the answer itself. */
  record?(answer: A): JsonObject;
  /**
   * The answer to a retry of the completing request; by default what was recorded. `refuse` is the
   * 401 for a retry that cannot be answered so (e.g. a new login without the password).
   */
  replay?(replay: UiaReplay, refuse: () => UiaRequired): Promise<A>;
}

/** The 401 answer: the flows on offer, what the session has done, and why the last stage failed. */
export class UiaRequired extends MatrixError {
  constructor(
    readonly payload: { flows: { stages: string[] }[]; params: Record<string, unknown>; session: string; completed: string[] },
    failure?: MatrixError,
  ) {
    super(401, failure?.errcode ?? '', failure?.message ?? 'User-interactive authentication required');
    this.failure = failure;
  }
  private readonly failure: MatrixError | undefined;

  override body(): Record<string, unknown> {
    const body: Record<string, unknown> = { ...this.payload };
    if (this.failure) Object.assign(body, { errcode: this.failure.errcode, error: this.failure.message });
    return body;
  }
}

/**
 * A stage's refusal of the whole request, answered as it stands rather than as a failed stage in a
 * 401: e.g. authenticating as someone other than the requester (403, as Synapse answers).
 */
export class UiaRefusal extends MatrixError {}

/**
 * The User-Interactive Auth engine. Sessions live in the database (so they survive restarts and
 * are shared by several processes), expire, and are bound to the operation and user that began them.
 */
export class UiaService {
  private readonly stages = new Map<string, UiaStage>();

  constructor(
    private readonly repo: UiaSessionsRepo,
    private readonly clock: Clock,
    private readonly lifetimeMs: number,
  ) {}

  register(stage: UiaStage): void {
    this.stages.set(stage.type, stage);
  }

  has(type: string): boolean {
    return this.stages.has(type);
  }

  private params(flows: string[][]): Record<string, unknown> {
    const params: Record<string, unknown> = {};
    for (const type of new Set(flows.flat())) {
      const p = this.stages.get(type)?.params?.();
      if (p) params[type] = p;
    }
    return params;
  }

  private required(flows: string[][], sessionId: string, results: Record<string, StageResult>, failure?: MatrixError): UiaRequired {
    return new UiaRequired(
      { flows: flows.map((stages) => ({ stages })), params: this.params(flows), session: sessionId, completed: Object.keys(results) },
      failure,
    );
  }

  /**
   * Runs one round of UIA. Returns when a whole flow is complete (or when the request retries the
   * one that completed the session); otherwise throws the 401 that tells the client what is left.
   */
  private async authenticate<P>(req: UiaRequest<P>): Promise<UiaOutcome<P> | UiaReplay> {
    const now = this.clock.now();
    const dict: AuthDict = req.auth ?? {};
    const given = Object.keys(req.params.raw).length > 0 ? req.params.raw : undefined;
    let sessionId: string;
    let results: Record<string, StageResult>;
    let params: JsonObject;
    let secretHash: string | undefined;
    if (dict.session !== undefined) {
      const row = await this.repo.get(dict.session);
      if (!row || row.expires_ts < now) throw unknown(400, 'Unknown session ID');
      if (row.operation !== req.operation || (row.user_id ?? undefined) !== req.userId) {
        throw forbidden('Requested operation has changed during the UI authentication session.');
      }
      sessionId = row.session_id;
      results = readResults(row.results);
      const remembered = row.params === null ? {} : (JSON.parse(row.params) as JsonObject);
      params = given ?? remembered;
      if (row.completed_ts !== null) {
        // The spec lets a retry of a completed session get the result or a 401 listing the
        // completed stages; either way the operation never runs a second time.
        const same = sortedJson(params) === sortedJson(remembered);
        if (row.result !== null && same) return { sessionId, results, recorded: JSON.parse(row.result) as JsonObject };
        throw this.completedAnswer(req, { sessionId, results });
      }
      if (given && sortedJson(given) !== sortedJson(remembered)) await this.repo.setParams(sessionId, JSON.stringify(given));
      secretHash = row.secret_hash ?? undefined;
    } else {
      sessionId = randomToken(18);
      results = {};
      params = req.params.raw;
      await this.repo.create({
        session_id: sessionId,
        operation: req.operation,
        user_id: req.userId ?? null,
        created_ts: now,
        expires_ts: now + this.lifetimeMs,
        results: '{}',
        params: JSON.stringify(params),
      });
    }

    const type = dict.type;
    if (type !== undefined) {
      const offered = req.flows.some((flow) => flow.includes(type));
      const stage = this.stages.get(type);
      if (!offered || !stage) {
        throw this.required(req.flows, sessionId, results, new MatrixError(400, 'M_UNRECOGNIZED', `Unrecognised or unavailable auth type: ${type.slice(0, 100)}`));
      }
      try {
        results[type] = await stage.check(dict, { sessionId, operation: req.operation, userId: req.userId, ip: req.ip });
      } catch (err) {
        if (err instanceof MatrixError && !(err instanceof UiaRefusal) && (err.status === 401 || err.status === 403 || err.status === 400)) {
          throw this.required(req.flows, sessionId, results, err);
        }
        throw err;
      }
      await this.repo.setResults(sessionId, JSON.stringify(results));
    }

    const done = req.flows.some((flow) => flow.every((stage) => stage in results));
    if (!done) {
      if (req.hashSecret && secretHash === undefined) await this.repo.setSecretHash(sessionId, await req.hashSecret());
      throw this.required(req.flows, sessionId, results);
    }
    // Read only now: a request may open a session before it has all the parameters.
    return { sessionId, results, params: req.params.read(params), ...(secretHash !== undefined ? { secretHash } : {}) };
  }

  /** The 401 for a retry of a completed session that cannot be answered with the stored result. */
  private completedAnswer(req: Pick<UiaRequest<unknown>, 'flows'>, session: { sessionId: string; results: Record<string, StageResult> }): UiaRequired {
    return this.required(req.flows, session.sessionId, session.results, forbidden('This authentication session has already been used'));
  }

  /** Whether the session exists and has been completed (e.g. to skip checks a retry would fail). */
  async isCompleted(sessionId: string): Promise<boolean> {
    const row = await this.repo.get(sessionId);
    return row !== undefined && row.completed_ts !== null && row.expires_ts >= this.clock.now();
  }

  /**
   * An operation behind UIA, the one way every guarded endpoint runs: authenticate, check what must
   * hold, use the session up (only one of several concurrent completing requests gets through), run
   * the operation once, and keep its answer for a client that retries the same request.
   */
  async perform<P, A>(req: UiaRequest<P>, operation: GuardedOperation<P, A>): Promise<A> {
    const outcome = await this.authenticate(req);
    if ('recorded' in outcome) {
      if (operation.replay) return operation.replay(outcome, () => this.completedAnswer(req, outcome));
      return outcome.recorded as A;
    }
    await operation.check?.(outcome);
    if (!(await this.repo.complete(outcome.sessionId, this.clock.now()))) throw this.completedAnswer(req, outcome);
    const answer = await operation.run(outcome);
    const recorded = operation.record ? operation.record(answer) : (answer as JsonObject);
    await this.repo.setResult(outcome.sessionId, JSON.stringify(recorded));
    return answer;
  }

  pruneExpired(): Promise<void> {
    return this.repo.deleteExpired(this.clock.now());
  }
}

/** A request body (already parsed as an object) without `auth` and the named secret fields: what a UIA session remembers. */
export function uiaParams(body: unknown, ...secrets: string[]): JsonObject {
  if (!isObject(body)) return {};
  return Object.fromEntries(Object.entries(body).filter(([key]) => key !== 'auth' && !secrets.includes(key)));
}
