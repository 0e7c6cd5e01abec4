import { isObject, type JsonObject } from '../validate.js';
import type { Clock } from '../clock.js';
import { randomToken } from '../crypto/tokens.js';
import { MatrixError, forbidden, unknown } from '../errors.js';
import type { UiaSessionsRepo } from '../storage/uia.js';

/** What a completed stage established, kept in the session (e.g. the user, or a validated 3PID). */
export type StageResult = Record<string, unknown>;

export interface StageContext {
  sessionId: string;
  /** The operation the session is bound to, e.g. "POST /register". */
  operation: string;
  /** The authenticated user, for operations on an existing account. */
  userId?: string;
  ip: string;
}

/** One kind of UIA stage. Stages register themselves with the engine, so new kinds plug in. */
export interface UiaStage {
  readonly type: string;
  /** The `params` entry advertised for this stage, if any. */
  params?(): Record<string, unknown> | undefined;
  /** Checks the auth dict; throws a MatrixError when it does not pass. */
  check(auth: Record<string, unknown>, ctx: StageContext): Promise<StageResult>;
}

export interface UiaRequest {
  auth: unknown;
  operation: string;
  userId?: string;
  flows: string[][];
  ip: string;
  /**
   * The request's parameters (its body without `auth` and without secrets). As in Synapse, the
   * session remembers them: a later request that brings none is taken to mean the remembered ones,
   * one that brings some replaces them.
   */
  params?: JsonObject;
  /** Hashes a password the request carries, so that later requests may leave it out (never stored in clear). */
  hashSecret?: () => Promise<string>;
}

export interface UiaOutcome {
  sessionId: string;
  results: Record<string, StageResult>;
  /** The parameters in force: this request's, or the session's remembered ones. */
  params: JsonObject;
  /** The hash of a password an earlier request of the session carried. */
  secretHash?: string;
  /**
   * Set when the session had already been completed by the same request: what the operation
   * answered then. The operation must not run again; the endpoint answers this (or `completedAnswer`).
   */
  replay?: JsonObject;
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
   * Runs one round of UIA. Returns when a whole flow is complete; otherwise throws the 401 that
   * tells the client what is left. A finished session must be closed with `finish`.
   */
  async authenticate(req: UiaRequest): Promise<UiaOutcome> {
    const now = this.clock.now();
    const auth = req.auth;
    if (auth !== undefined && auth !== null && !isObject(auth)) {
      throw new MatrixError(400, 'M_BAD_JSON', "'auth' must be an object");
    }
    const dict = (auth ?? {}) as Record<string, unknown>;
    if (dict.session !== undefined && typeof dict.session !== 'string') throw new MatrixError(400, 'M_BAD_JSON', "'auth.session' must be a string");
    if (dict.type !== undefined && typeof dict.type !== 'string') throw new MatrixError(400, 'M_BAD_JSON', "'auth.type' must be a string");

    const given = req.params && Object.keys(req.params).length > 0 ? req.params : undefined;
    let sessionId: string;
    let results: Record<string, StageResult>;
    let params: JsonObject;
    let secretHash: string | undefined;
    if (typeof dict.session === 'string') {
      const row = await this.repo.get(dict.session);
      if (!row || row.expires_ts < now) throw unknown(400, 'Unknown session ID');
      if (row.operation !== req.operation || (row.user_id ?? undefined) !== req.userId) {
        throw forbidden('Requested operation has changed during the UI authentication session.');
      }
      sessionId = row.session_id;
      results = JSON.parse(row.results) as Record<string, StageResult>;
      const remembered = row.params === null ? {} : (JSON.parse(row.params) as JsonObject);
      params = given ?? remembered;
      if (row.completed_ts !== null) {
        // The spec lets a retry of a completed session get the result or a 401 listing the
        // completed stages; either way the operation never runs a second time.
        const same = canonicalJson(params) === canonicalJson(remembered);
        if (row.result !== null && same) return { sessionId, results, params, replay: JSON.parse(row.result) as JsonObject };
        throw this.completedAnswer(req, { sessionId, results });
      }
      if (given && canonicalJson(given) !== canonicalJson(remembered)) await this.repo.setParams(sessionId, JSON.stringify(given));
      secretHash = row.secret_hash ?? undefined;
    } else {
      sessionId = randomToken(18);
      results = {};
      params = req.params ?? {};
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

    const type = dict.type as string | undefined;
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
    return { sessionId, results, params, ...(secretHash !== undefined ? { secretHash } : {}) };
  }

  /** The 401 for a retry of a completed session that cannot be answered with the stored result. */
  completedAnswer(req: Pick<UiaRequest, 'flows'>, outcome: Pick<UiaOutcome, 'sessionId' | 'results'>): UiaRequired {
    return this.required(req.flows, outcome.sessionId, outcome.results, forbidden('This authentication session has already been used'));
  }

  /**
   * Closes a completed session so it cannot authorise a second operation, and forgets its secret.
   * Only one of several concurrent requests that completed the same session gets `true`.
   */
  finish(sessionId: string): Promise<boolean> {
    return this.repo.complete(sessionId, this.clock.now());
  }

  /** Keeps what the operation answered (nothing secret), for a client that retries the same request. */
  record(sessionId: string, result: JsonObject): Promise<void> {
    return this.repo.setResult(sessionId, JSON.stringify(result));
  }

  /** Whether the session exists and has been completed (e.g. to skip checks a retry would fail). */
  async isCompleted(sessionId: string): Promise<boolean> {
    const row = await this.repo.get(sessionId);
    return row !== undefined && row.completed_ts !== null && row.expires_ts >= this.clock.now();
  }

  /**
   * The whole round for an operation with nothing to check between UIA and its execution: the
   * operation runs once, and a retry of the completing request gets its stored answer.
   */
  async perform(req: UiaRequest, operation: (outcome: UiaOutcome) => Promise<JsonObject>): Promise<JsonObject> {
    const outcome = await this.authenticate(req);
    if (outcome.replay) return outcome.replay;
    if (!(await this.finish(outcome.sessionId))) throw this.completedAnswer(req, outcome);
    const result = await operation(outcome);
    await this.record(outcome.sessionId, result);
    return result;
  }

  pruneExpired(): Promise<void> {
    return this.repo.deleteExpired(this.clock.now());
  }
}

/** JSON with object keys sorted, so that two equal bodies compare equal whatever their key order. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    isObject(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]])) : v,
  );
}

/** A request body without `auth` and the named secret fields: what a UIA session remembers. */
export function uiaParams(body: JsonObject, ...secrets: string[]): JsonObject {
  return Object.fromEntries(Object.entries(body).filter(([key]) => key !== 'auth' && !secrets.includes(key)));
}
