/**
 * Bounds the costly write requests (mail-sending token requests and the like) of this process: at
 * most `perTurn` start their handlers in one turn of the event loop, and at most `concurrent` run
 * at once; the rest wait their turn, first come first served.
 *
 * Why: on SQLite such a handler runs start to finish in one callback (its queries do not wait),
 * and one turn of the loop serves every request that has arrived, so under a flood of fifty a
 * cheap request (whoami, a sync woken by a message) that arrived meanwhile waited for fifty
 * handlers, tens of milliseconds. Capping the starts per turn lets the loop read and answer what
 * else is ready between them. (On PostgreSQL handlers wait on the network, and the loop serves
 * others meanwhile; a low cap on those running at once cost a fifth of the throughput there.)
 */
export class Admission {
  private running = 0;
  private startedThisTurn = 0;
  private turnEnding = false;
  private readonly waiting: (() => void)[] = [];

  constructor(
    readonly perTurn: number,
    readonly concurrent = Infinity,
  ) {
    if (!(perTurn >= 1) || !(concurrent >= 1)) throw new Error('admission limits must be at least 1');
  }

  /** Runs `work` when a place is free. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.waiting.length > 0 || !this.hasPlace()) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.start();
    try {
      return await work();
    } finally {
      this.running--;
      this.admit();
    }
  }

  get queued(): number {
    return this.waiting.length;
  }

  private hasPlace(): boolean {
    return this.running < this.concurrent && this.startedThisTurn < this.perTurn;
  }

  private start(): void {
    this.running++;
    this.startedThisTurn++;
    if (this.turnEnding) return;
    this.turnEnding = true;
    // Runs after this turn's I/O callbacks: the next turn gets its own allowance.
    setImmediate(() => {
      this.turnEnding = false;
      this.startedThisTurn = 0;
      this.admit();
    });
  }

  private admit(): void {
    while (this.waiting.length > 0 && this.hasPlace()) {
      this.start();
      this.waiting.shift()!();
    }
  }
}
