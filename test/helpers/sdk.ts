import assert from 'node:assert/strict';
import * as sdk from 'matrix-js-sdk';
import { logger as sdkGlobalLogger } from 'matrix-js-sdk/lib/logger.js';

type SdkLogger = NonNullable<sdk.ICreateClientOpts['logger']>;

/** A logger for matrix-js-sdk clients that drops everything: test output has no use for it. */
export const quietLogger: SdkLogger = {
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  getChild: () => quietLogger,
} as SdkLogger;

// Some SDK modules (InteractiveAuth, sync) log through the SDK's global logger, not the client's.
(sdkGlobalLogger as unknown as { disableAll(): void }).disableAll();

/** Runs `fn`, expecting the SDK to reject with a Matrix error; returns it. */
export async function rejection(fn: () => Promise<unknown>): Promise<sdk.MatrixError> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof sdk.MatrixError, String(err));
    return err;
  }
  assert.fail('expected the request to fail');
}

/** matrix-js-sdk clients for one test suite, all quiet, all stopped together afterwards. */
export class SdkClients {
  private readonly all: sdk.MatrixClient[] = [];

  constructor(private readonly baseUrl: () => string) {}

  readonly create = (opts: Partial<sdk.ICreateClientOpts> = {}): sdk.MatrixClient => {
    const c = sdk.createClient({ baseUrl: this.baseUrl(), logger: quietLogger, ...opts });
    this.all.push(c);
    return c;
  };

  stopAll(): void {
    for (const c of this.all) c.stopClient();
  }
}

// matrix-js-sdk 37 arms a timer for each sync request (poll timeout + 80 s, http-api/utils.ts
// timeoutSignal) and never clears it, which would keep this test process alive for minutes after
// stopClient(). Such long timers are unref'd; the SDK's behaviour is otherwise unchanged.
const originalSetTimeout = globalThis.setTimeout;
globalThis.setTimeout = ((fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
  const timer = originalSetTimeout(fn, ms, ...args);
  if ((ms ?? 0) >= 60_000) timer.unref();
  return timer;
}) as typeof setTimeout;

/** Resolves with the first emitted value that passes `test`; rejects after `ms`. */
export function waitFor<T>(subscribe: (handler: (value: T) => void) => () => void, test: (value: T) => boolean, what: string, ms = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`timed out waiting for ${what}`));
    }, ms);
    const unsubscribe = subscribe((value) => {
      if (!test(value)) return;
      clearTimeout(timer);
      unsubscribe();
      resolve(value);
    });
  });
}

export const prepared = (client: sdk.MatrixClient) =>
  waitFor<sdk.SyncState>(
    (h) => {
      client.on(sdk.ClientEvent.Sync, h);
      return () => client.off(sdk.ClientEvent.Sync, h);
    },
    (state) => state === sdk.SyncState.Prepared,
    'the PREPARED sync state',
  );
