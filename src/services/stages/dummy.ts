import type { StageResult, UiaStage } from '../uia.js';

/** m.login.dummy: always passes; offered when registration needs no verification. */
export class DummyStage implements UiaStage {
  readonly type = 'm.login.dummy';

  async check(): Promise<StageResult> {
    return {};
  }
}
