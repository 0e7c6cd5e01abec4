import { readFileSync } from 'node:fs';
import pg from 'pg';
import { PG } from '../test/helpers/server.js';

/** Linux's clock ticks per second (USER_HZ), the unit of /proc/<pid>/stat's CPU times. */
const TICK_MICROS = 1_000_000 / 100;

/**
 * CPU time (user + system) the PostgreSQL backends serving `database` have used so far, in
 * microseconds (10 ms resolution), read from /proc: PostgreSQL runs on this machine. Backends that
 * end between two readings take their time with them, so a difference counts only those that last
 * (a pool's connections); undefined where /proc cannot be read.
 */
export async function postgresCpuMicros(database: string): Promise<number | undefined> {
  const client = new pg.Client({ ...PG, database: 'postgres' });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [database]);
    let ticks = 0;
    for (const { pid } of rows) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        // Fields after the command (which may hold spaces): utime and stime are the 12th and 13th.
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ticks += Number(fields[11]) + Number(fields[12]);
      } catch {
        // The backend ended since pg_stat_activity listed it.
      }
    }
    return rows.length > 0 && Number.isFinite(ticks) ? ticks * TICK_MICROS : undefined;
  } catch {
    return undefined;
  } finally {
    await client.end();
  }
}
