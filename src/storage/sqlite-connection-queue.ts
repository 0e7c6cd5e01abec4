/** How many plain queries may go ahead of a waiting transaction in a row. */
const QUERIES_AHEAD = 8;

/**
 * Who has SQLite's one connection next. A plain query (a read, mostly: a /sync, a token check) goes
 * ahead of waiting transactions (writes, which queue there to share a commit), at most QUERIES_AHEAD
 * in a row, so that neither waits long behind the other; each kind in arrival order.
 */
export class SqliteConnectionQueue {
  private held = false;
  private readonly queries: (() => void)[] = [];
  private readonly transactions: (() => void)[] = [];
  private queriesInARow = 0;
  private transactionNext = false;

  /** Requests waiting for the connection. */
  get waiting(): number {
    return this.queries.length + this.transactions.length;
  }

  /** Whether the next acquire (called synchronously after this, by Kysely) is for a transaction. */
  markTransaction(on: boolean): void {
    this.transactionNext = on;
  }

  acquire(): Promise<void> {
    const transaction = this.transactionNext;
    this.transactionNext = false;
    if (!this.held) {
      this.held = true;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => (transaction ? this.transactions : this.queries).push(resolve));
  }

  /** Hands the connection to the next in line, if any. */
  release(): void {
    const query = this.queries.length > 0 && (this.transactions.length === 0 || this.queriesInARow < QUERIES_AHEAD);
    const next = query ? this.queries.shift() : this.transactions.shift();
    if (!next) {
      this.held = false;
      return;
    }
    this.queriesInARow = query ? this.queriesInARow + 1 : 0;
    next();
  }
}
