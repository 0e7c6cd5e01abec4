import type { ManualClock, TestServer } from './server.js';
import { until } from './until.js';

/**
 * Waits until no message of `channels` is pending or in flight on `server`'s database: every one is
 * sent (a sink records a message before it answers, so before it is marked sent) or given up. What
 * arrived by then is all that will, so a test can count it instead of sleeping.
 */
export async function outboxSettled(server: TestServer, channels: string[] = ['email', 'sms'], timeoutMs = 10_000): Promise<void> {
  await until(async () => (await server.hs.services.store.outbox.nextDueTs(channels)) === undefined, `the outbox (${channels.join(', ')}) to settle`, timeoutMs);
}

/** Moves the outbox's manual clock on and has each worker look at once, as its timer would when that time came. */
export function stepOutbox(clock: ManualClock, ms: number, ...servers: TestServer[]): void {
  clock.advance(ms);
  for (const server of servers) server.hs.services.delivery.worker.poke();
}

/** The queue row of a message, by its dedupe key. */
export function outboxRow(server: TestServer, dedupeKey: string) {
  return server.hs.services.store.outbox.findByDedupeKey(dedupeKey);
}

/**
 * Waits until the row with `dedupeKey` has had `attempts` tries and no worker holds it. The bound is
 * generous: the first try waits for the SMTP thread to start, which on a loaded machine running the
 * sources (each thread compiles them afresh) took over 10 s.
 */
export async function afterAttempts(server: TestServer, dedupeKey: string, attempts: number, timeoutMs = 30_000) {
  let row = await outboxRow(server, dedupeKey);
  await until(
    async () => {
      row = await outboxRow(server, dedupeKey);
      return row !== undefined && row.attempts >= attempts && row.locked_until === null;
    },
    `${dedupeKey} to have been tried ${attempts} times`,
    timeoutMs,
  );
  return row!;
}
