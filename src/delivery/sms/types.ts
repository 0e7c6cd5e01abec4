/** One text message, ready to send. */
export interface SmsMessage {
  /** E.164 digits without '+'. */
  to: string;
  body: string;
  /** A stable ID for this message (the same on every retry), for gateways that de-duplicate. */
  id?: string;
}

/** A way of sending SMS. `send` resolves once the gateway accepted the message, else throws. */
export interface SmsSender {
  readonly name: string;
  send(message: SmsMessage): Promise<void>;
}

/**
 * A failed send. `permanent` marks answers that no retry will change (e.g. the gateway refused the
 * number); everything else (5xx, timeouts, refused connections) is worth retrying.
 */
export class SmsSendError extends Error {
  constructor(
    message: string,
    readonly permanent = false,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Runs a gateway request, turning network failures and timeouts into a retryable SmsSendError. */
export async function gatewayFetch(provider: string, url: string, init: RequestInit, timeoutMs: number): Promise<Response> {
  try {
    return await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new SmsSendError(`${provider}: request to the SMS gateway failed (${cause})`);
  }
}

/**
 * Turns a non-2xx gateway answer into an SmsSendError; 400 is permanent (the request itself is
 * refused). Only the error code and message of a JSON answer (Twilio's shape) are kept, never the
 * raw body, which a gateway might fill with the message it refused, code included.
 */
export async function gatewayError(provider: string, res: Response): Promise<SmsSendError> {
  let detail = '';
  try {
    const body = (await res.json()) as { code?: unknown; message?: unknown; error?: unknown };
    const code = typeof body.code === 'number' || typeof body.code === 'string' ? String(body.code).slice(0, 20) : undefined;
    const message = typeof body.message === 'string' ? body.message : typeof body.error === 'string' ? body.error : undefined;
    detail = [code, message?.slice(0, 200)].filter(Boolean).join(' ').replace(/\s+/g, ' ');
  } catch {
    detail = '';
  }
  return new SmsSendError(`${provider}: SMS gateway answered ${res.status}${detail ? `: ${detail}` : ''}`, res.status === 400, res.status);
}
