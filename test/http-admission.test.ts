import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Admission } from '../src/http/admission.js';

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

test('at most perTurn costly handlers start in one turn of the event loop, in arrival order', async () => {
  const admission = new Admission(4);
  const started: number[] = [];
  const done = Array.from({ length: 10 }, (_, i) =>
    admission.run(async () => {
      started.push(i);
      return i;
    }),
  );
  await Promise.resolve();
  assert.deepEqual(started, [0, 1, 2, 3], 'the first four start at once');
  assert.equal(admission.queued, 6);
  await turn();
  assert.equal(started.length, 8, 'four more in the next turn');
  assert.deepEqual(await Promise.all(done), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'first come, first served');
  assert.equal(admission.queued, 0);
});

test('other callbacks run between two turns of costly handlers', async () => {
  const admission = new Admission(2);
  const order: string[] = [];
  const work = Array.from({ length: 6 }, (_, i) => admission.run(async () => void order.push(`costly ${i}`)));
  setImmediate(() => order.push('cheap'));
  await Promise.all(work);
  const cheap = order.indexOf('cheap');
  assert.ok(cheap > 0 && cheap < order.length - 1, `the cheap callback ran between costly ones: ${order.join(', ')}`);
});

test('at most `concurrent` run at once, a freed place is taken by the next in line', async () => {
  const admission = new Admission(100, 2);
  let running = 0;
  let most = 0;
  const release: (() => void)[] = [];
  const work = Array.from({ length: 5 }, () =>
    admission.run(async () => {
      running++;
      most = Math.max(most, running);
      await new Promise<void>((resolve) => release.push(resolve));
      running--;
    }),
  );
  let finished = 0;
  for (const w of work) void w.then(() => finished++);
  for (let turns = 0; finished < 5 && turns < 100; turns++) {
    await turn();
    assert.ok(release.length <= 2);
    release.shift()?.();
  }
  await Promise.all(work);
  assert.equal(most, 2);
});

test('a handler that throws gives its place back', async () => {
  const admission = new Admission(1, 1);
  await assert.rejects(admission.run(async () => Promise.reject(new Error('refused'))), /refused/);
  assert.equal(await admission.run(async () => 'next'), 'next');
  assert.throws(() => new Admission(0), /at least 1/);
});
