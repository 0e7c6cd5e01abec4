import type SQLite from 'better-sqlite3';

/** When an open group is committed although more work waits for the connection. */
export interface GroupLimits {
  /** Units (transactions) in one group. */
  units: number;
  /** How long a group stays open, from its BEGIN. */
  ms: number;
}

const DEFAULT_LIMITS: GroupLimits = { units: 32, ms: 8 };

/**
 * Group commit for SQLite's one connection. A commit writes every page the transaction changed to the
 * WAL, and consecutive sends change mostly the same pages (the tails of the events, stream and search
 * tables; in a busy room, each member's notification rows and counts): measured on the one-room send
 * load, the COMMIT was half of SQLite's time (1.5 ms a send), one write per changed page.
 *
 * So a transaction (a unit) runs inside a SAVEPOINT of a transaction that stays open while other work
 * waits for the connection; the open group is committed when the connection is released with nobody
 * waiting, when the group reaches its limits, or before a write outside any unit (which must be
 * committed when it returns). A unit's own rollback undoes only its savepoint. Whoever answers for a
 * unit waits for `durable()`: nothing is acknowledged before its group's COMMIT, and a failed COMMIT
 * fails every unit of the group.
 *
 * Reads outside units run inside the open group and see the writes of units that are done but not yet
 * committed (milliseconds' worth, on this one connection only; other processes and the checkpoint
 * thread see committed data only). Those writes are lost only if the COMMIT itself fails or the
 * process dies before it, and then none of their units was acknowledged.
 */
export class SqliteGroupCommit {
  /** Since the connection opened: groups committed, and the units they held. */
  readonly counts = { commits: 0, units: 0 };
  private open = false;
  private openedAt = 0;
  private units = 0;
  private inUnit = false;
  private pending?: { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void };
  private readonly statements = new Map<string, SQLite.Statement>();

  constructor(
    private readonly database: SQLite.Database,
    private readonly limits: GroupLimits = DEFAULT_LIMITS,
  ) {}

  /** A unit starts: the group's BEGIN if none is open, then the unit's savepoint. */
  begin(): void {
    if (!this.open) {
      // IMMEDIATE takes the write lock now. A DEFERRED transaction that has read, then writes after the
      // checkpoint thread reset the WAL, fails with SQLITE_BUSY_SNAPSHOT, which no busy timeout waits
      // out; this way the checkpoint's reset waits for the transaction instead.
      this.run('begin immediate');
      this.open = true;
      this.openedAt = performance.now();
      this.units = 0;
    }
    this.run('savepoint myelin_unit');
    this.inUnit = true;
  }

  /** A unit is done: its writes join the group, committed with it. */
  commit(): void {
    this.run('release myelin_unit');
    this.inUnit = false;
    this.units += 1;
  }

  /** A unit is undone; the group's other units stay. */
  rollback(): void {
    this.inUnit = false;
    if (this.database.inTransaction) {
      this.run('rollback to myelin_unit');
      this.run('release myelin_unit');
      return;
    }
    // SQLite rolled the whole transaction back itself (an I/O error, a full disk): every unit of the group is lost with it.
    this.closeGroup()?.reject(new Error('the database rolled back the transaction'));
  }

  /** Before a statement runs: a write outside any unit is committed on its own, so the group goes first. */
  beforeStatement(reader: boolean): void {
    if (this.open && !this.inUnit && !reader) this.flush();
  }

  /** The connection is being released, with `waiting` requests waiting for it. */
  released(waiting: number): void {
    if (!this.open || this.inUnit) return;
    if (waiting === 0 || this.units >= this.limits.units || performance.now() - this.openedAt >= this.limits.ms) this.flush();
  }

  /** Settles once the group the current unit belongs to is committed; rejects if that COMMIT fails. */
  durable(): Promise<void> {
    if (!this.open) return Promise.resolve();
    if (!this.pending) {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // Each unit awaits it; until it does, a rejection must not count as unhandled.
      promise.catch(() => undefined);
      this.pending = { promise, resolve, reject };
    }
    return this.pending.promise;
  }

  /** Before the connection closes: a unit still running is undone, the finished ones committed. */
  close(): void {
    if (this.inUnit) this.rollback();
    this.flush();
  }

  /** Commits the open group, if any. */
  flush(): void {
    if (!this.open) return;
    const pending = this.closeGroup();
    try {
      this.run('commit');
    } catch (err) {
      try {
        if (this.database.inTransaction) this.run('rollback');
      } finally {
        pending?.reject(err);
      }
      return;
    }
    this.counts.commits += 1;
    this.counts.units += this.units;
    pending?.resolve();
  }

  private closeGroup(): SqliteGroupCommit['pending'] {
    const pending = this.pending;
    this.pending = undefined;
    this.open = false;
    return pending;
  }

  private run(sql: string): void {
    let statement = this.statements.get(sql);
    if (!statement) this.statements.set(sql, (statement = this.database.prepare(sql)));
    statement.run();
  }
}
