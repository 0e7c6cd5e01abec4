/**
 * A failure with a Matrix error code. Services throw it; the HTTP layer turns it into
 * `{"errcode", "error", ...extra}` with its status.
 */
export class MatrixError extends Error {
  constructor(
    readonly status: number,
    readonly errcode: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): Record<string, unknown> {
    return { errcode: this.errcode, error: this.message, ...this.extra };
  }
}

export const badJson = (msg: string) => new MatrixError(400, 'M_BAD_JSON', msg);
export const notJson = (msg = 'Content not JSON.') => new MatrixError(400, 'M_NOT_JSON', msg);
export const missingParam = (name: string) => new MatrixError(400, 'M_MISSING_PARAM', `Missing parameter: ${name}`);
export const invalidParam = (msg: string) => new MatrixError(400, 'M_INVALID_PARAM', msg);
export const forbidden = (msg: string) => new MatrixError(403, 'M_FORBIDDEN', msg);
export const notFound = (msg: string) => new MatrixError(404, 'M_NOT_FOUND', msg);
export const unrecognized = (status: 400 | 404 | 405, msg = 'Unrecognized request') => new MatrixError(status, 'M_UNRECOGNIZED', msg);
/** What Synapse answers a guest on an endpoint that does not allow guests. */
export const guestForbidden = (msg = 'Guest access is not allowed') => new MatrixError(403, 'M_GUEST_ACCESS_FORBIDDEN', msg);
export const unknown = (status: number, msg: string) => new MatrixError(status, 'M_UNKNOWN', msg);

export function limitExceeded(retryAfterMs: number): MatrixError {
  return new MatrixError(
    429,
    'M_LIMIT_EXCEEDED',
    'Too many requests',
    { retry_after_ms: retryAfterMs },
    { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) },
  );
}
