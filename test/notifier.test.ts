import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { Notifier } from '../src/services/sync/notifier.js';
import { openDb, type Db, type PostgresArgs } from '../src/storage/db.js';
import { StreamChannel } from '../src/storage/stream-channel.js';
import { freshDatabase, testConfig } from './helpers/server.js';
import { until } from './helpers/until.js';

/** Whether `wait` resolved within `ms` (a woken waiter resolves at once). */
async function wokenWithin(wait: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const woken = await Promise.race([wait.then(() => true as const), timeout]);
  clearTimeout(timer);
  return woken;
}

describe('notifier: waking by user or by room', () => {
  it('wakes a waiter for one of its rooms, and only those waiters', async () => {
    const notifier = new Notifier();
    const inRooms = notifier.subscribe('@a:x', ['!r1:x', '!r2:x']);
    const otherRoom = notifier.subscribe('@b:x', ['!r3:x']);
    const noRooms = notifier.subscribe('@c:x');
    assert.equal(notifier.waiting, 3);
    notifier.notify({ position: 7, rooms: ['!r2:x'] });
    assert.equal(await wokenWithin(inRooms.wait(10_000), 1000), true);
    assert.equal(await wokenWithin(otherRoom.wait(10_000), 50), false);
    assert.equal(await wokenWithin(noRooms.wait(10_000), 50), false);
    assert.equal(notifier.latestPosition, 7);
    for (const s of [inRooms, otherRoom, noRooms]) s.dispose();
    await notifier.close();
  });

  it('wakes by user as before, and a waiter named by user and room together once', async () => {
    const notifier = new Notifier();
    const alice = notifier.subscribe('@a:x', ['!r:x']);
    const bob = notifier.subscribe('@b:x', ['!r:x']);
    notifier.notify({ position: 1, users: ['@a:x'], rooms: [] });
    assert.equal(await wokenWithin(alice.wait(10_000), 1000), true);
    assert.equal(await wokenWithin(bob.wait(10_000), 50), false);
    alice.dispose();
    const again = notifier.subscribe('@a:x', ['!r:x']);
    notifier.notify({ position: 2, users: ['@a:x'], rooms: ['!r:x'] });
    assert.equal(await wokenWithin(again.wait(10_000), 1000), true);
    assert.equal(await wokenWithin(bob.wait(10_000), 1000), true);
    again.dispose();
    bob.dispose();
    await notifier.close();
  });

  it('forgets a disposed waiter under every key, and counts it once', async () => {
    const notifier = new Notifier();
    const sub = notifier.subscribe('@a:x', ['!r1:x', '!r2:x', '!r1:x']);
    assert.equal(notifier.waiting, 1);
    sub.dispose();
    sub.dispose();
    assert.equal(notifier.waiting, 0);
    // Nothing is left to wake: a waiter subscribed afterwards to another room stays asleep.
    const later = notifier.subscribe('@b:x', ['!r9:x']);
    notifier.notify({ position: 3, users: ['@a:x'], rooms: ['!r1:x', '!r2:x'] });
    assert.equal(await wokenWithin(later.wait(10_000), 50), false);
    later.dispose();
    await notifier.close();
  });

  it('remembers the rooms changed before a pending subscription names its rooms, and wakes for those it names', async () => {
    const notifier = new Notifier();
    const named = notifier.subscribeBeforeRooms('@a:x');
    const other = notifier.subscribeBeforeRooms('@b:x');
    // Changes told while the rooms are unknown (as a notice from another process arrives late).
    notifier.wakeLocal({ position: 4, users: [], rooms: ['!r1:x'] });
    assert.equal(await wokenWithin(named.wait(10_000), 50), false, 'no room named yet: not woken');
    named.listen(['!r1:x', '!r2:x']);
    other.listen(['!r3:x']);
    assert.equal(await wokenWithin(named.wait(10_000), 1000), true, 'one of its rooms changed before it named them');
    assert.equal(await wokenWithin(other.wait(10_000), 50), false, 'a room it does not listen to');
    notifier.notify({ position: 5, rooms: ['!r3:x'] });
    assert.equal(await wokenWithin(other.wait(10_000), 1000), true, 'a room it named, after naming it');
    for (const s of [named, other]) s.dispose();
    assert.equal(notifier.waiting, 0);

    const byUser = notifier.subscribeBeforeRooms('@c:x');
    notifier.notify({ position: 6, users: ['@c:x'] });
    assert.equal(await wokenWithin(byUser.wait(10_000), 1000), true, 'by user, before naming rooms');
    byUser.dispose();
    // Disposed: it remembers nothing more.
    notifier.wakeLocal({ position: 7, users: [], rooms: ['!r1:x'] });
    await notifier.close();
  });

  it('wakes every waiter, room waiters included, when it closes', async () => {
    const notifier = new Notifier();
    const sub = notifier.subscribe('@a:x', ['!r:x']);
    const waiting = sub.wait(60_000);
    await notifier.close();
    assert.equal(await wokenWithin(waiting, 1000), true);
    sub.dispose();
  });
});

describe('notifier across two processes sharing Postgres', () => {
  let db: Db;
  let drop: () => Promise<void>;
  const processes: { notifier: Notifier; channel: StreamChannel }[] = [];

  before(async () => {
    const fresh = await freshDatabase('postgres');
    drop = fresh.drop;
    const database = testConfig(0, fresh.database).database;
    db = await openDb(database);
    for (let i = 0; i < 2; i++) {
      const notifier = new Notifier();
      const channel = new StreamChannel(db.kysely, database.args as PostgresArgs, notifier.origin, (notice) => notifier.wakeLocal(notice), () => notifier.wakeAll());
      notifier.attach(channel);
      await channel.start();
      processes.push({ notifier, channel });
    }
  });
  after(async () => {
    for (const { notifier } of processes) await notifier.close();
    await db.close();
    await drop();
  });

  it('wakes a waiter for a room in the other process within a second, and carries the position', async () => {
    const [first, second] = processes;
    const waiter = second!.notifier.subscribe('@b:x', ['!room:x']);
    const bystander = second!.notifier.subscribe('@c:x', ['!other:x']);
    const sentAt = Date.now();
    first!.notifier.notify({ position: 41, rooms: ['!room:x'] });
    assert.equal(await wokenWithin(waiter.wait(10_000), 1000), true);
    assert.ok(Date.now() - sentAt < 1000);
    assert.equal(second!.notifier.latestPosition, 41);
    assert.equal(await wokenWithin(bystander.wait(10_000), 200), false);
    waiter.dispose();
    bystander.dispose();
  });

  it('delivers a change for more users than one payload holds', async () => {
    const [first, second] = processes;
    const users = Array.from({ length: 600 }, (_, i) => `@user${i}-${'x'.repeat(30)}:example.org`);
    const last = second!.notifier.subscribe(users[users.length - 1]!);
    const firstOne = second!.notifier.subscribe(users[0]!);
    first!.notifier.notify({ position: 42, users });
    assert.equal(await wokenWithin(last.wait(10_000), 1000), true);
    assert.equal(await wokenWithin(firstOne.wait(10_000), 1000), true);
    last.dispose();
    firstOne.dispose();
  });

  it('wakes every waiter for a payload in a format it does not know', async () => {
    const [, second] = processes;
    const waiter = second!.notifier.subscribe('@d:x', ['!r:x']);
    await sql`SELECT pg_notify('myelin_stream', ${'someorigin\n@somebody:x'})`.execute(db.kysely);
    assert.equal(await wokenWithin(waiter.wait(10_000), 1000), true);
    waiter.dispose();
    await until(() => second!.notifier.waiting === 0, 'the waiter to go');
  });
});
