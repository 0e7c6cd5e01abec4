import assert from 'node:assert/strict';
import { FakeTwilio, type ReceivedSms } from './fake-twilio.js';
import { startTestServer, type Engine, type TestServer, type TestServerOptions } from './server.js';

/** A homeserver that verifies phone numbers itself, sending SMS to a fake Twilio. */
export interface SmsEnv {
  server: TestServer;
  twilio: FakeTwilio;
  close(): Promise<void>;
}

/**
 * Starts a fake Twilio and a homeserver pointed at it. `sms` keys are merged into the sms section;
 * other overrides go to the top level. Generous 3PID limits unless a test sets its own.
 */
export async function startSmsEnv(engine: Engine, overrides: Record<string, unknown> = {}, options: TestServerOptions = {}): Promise<SmsEnv> {
  const twilio = await new FakeTwilio().start();
  const { sms, ...rest } = overrides as { sms?: Record<string, unknown> };
  const server = await startTestServer(
    engine,
    {
      sms: twilio.smsConfig(sms ?? {}),
      rc_3pid_validation: { per_second: 1000, burst_count: 1000 },
      outbox: { max_retry_interval: '1s', poll_interval: '1s' },
      ...rest,
    },
    options,
  );
  // The spec validator compiles its schemas on first use, blocking the event loop for seconds;
  // do it now, not while a gateway request (served by this same process) is in flight.
  await server.api.get('/versions');
  return {
    server,
    twilio,
    async close() {
      await server.close();
      await twilio.stop();
    },
  };
}

/** The numeric code in an SMS. */
export function smsCode(sms: ReceivedSms, digits = 6): string {
  const m = new RegExp(`\\b(\\d{${digits}})\\b`).exec(sms.body);
  assert.ok(m, `no code in SMS: ${sms.body}`);
  return m[1]!;
}

/** A fresh client secret (the same generator as the email helpers'). */
export { secret as clientSecret } from './threepid-email.js';

/** Waits for the next SMS to `to` (E.164 with '+') after the first `skip` messages. */
export async function nextSms(twilio: FakeTwilio, to: string, skip: number, timeoutMs = 10_000): Promise<ReceivedSms> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = twilio.messages.slice(skip).find((m) => m.to === to);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no SMS to ${to} within ${timeoutMs} ms`);
    await twilio.waitFor(twilio.messages.length + 1, Math.max(1, deadline - Date.now())).catch(() => undefined);
  }
}
