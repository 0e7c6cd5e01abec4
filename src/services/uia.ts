import { isObject } from '../validate.js';
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
}

export interface UiaOutcome {
  sessionId: string;
  results: Record<string, StageResult>;
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

    let sessionId: string;
    let results: Record<string, StageResult>;
    if (typeof dict.session === 'string') {
      const row = await this.repo.get(dict.session);
      if (!row || row.expires_ts < now) throw unknown(400, 'Unknown session ID');
      if (row.operation !== req.operation || (row.user_id ?? undefined) !== req.userId) {
        throw forbidden('Requested operation has changed during the UI authentication session.');
      }
      sessionId = row.session_id;
      results = JSON.parse(row.results) as Record<string, StageResult>;
    } else {
      sessionId = randomToken(18);
      results = {};
      await this.repo.create({
        session_id: sessionId,
        operation: req.operation,
        user_id: req.userId ?? null,
        created_ts: now,
        expires_ts: now + this.lifetimeMs,
        results: '{}',
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
    if (!done) throw this.required(req.flows, sessionId, results);
    return { sessionId, results };
  }

  /**
   * Closes a completed session so it cannot authorise a second operation. Only one of several
   * concurrent requests that completed the same session gets `true`.
   */
  finish(sessionId: string): Promise<boolean> {
    return this.repo.delete(sessionId);
  }

  pruneExpired(): Promise<void> {
    return this.repo.deleteExpired(this.clock.now());
  }
}
