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
