import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ENGINES, startTestServer, twoProcessesOnePostgres, type TestServer } from './helpers/server.js';

/**
 * A sync token promises that every event at or below its position was in that sync or an earlier
 * one. Sends take their stream position as late as they can (with their event row, in one
 * statement on PostgreSQL), so the classic bug to guard against is a sync handing out a position
 * while an event below it is still uncommitted: that event would then never be seen. Here senders
 * flood their rooms (through two processes on PostgreSQL) while a reader joined to every room syncs
 * incrementally without pause; every message must reach the reader exactly once.
 */

type Registered = { user_id: string; access_token: string };
type Sync = { next_batch: string; rooms?: { join?: Record<string, { timeline: { events: { event_id: string; type: string }[]; limited: boolean } }> } };

const enc = encodeURIComponent;
const SENDERS = 8;
const PER_SENDER = 15;
/** A timeline long enough that no incremental sync here is limited (a limited one may leave events out by design). */
const FILTER = enc(JSON.stringify({ room: { timeline: { limit: 1000 } }, presence: { types: [] } }));

async function flood(servers: TestServer[]): Promise<void> {
  const reader = await servers[0]!.api.register('reader');
  const senders: Registered[] = [];
  for (let i = 0; i < SENDERS; i++) senders.push(await servers[i % servers.length]!.api.register(`sender${i}`));
  const rooms: string[] = [];
  for (const [i, sender] of senders.entries()) {
    const api = servers[i % servers.length]!.api;
    const created = await api.post<{ room_id: string }>('/v3/createRoom', { preset: 'public_chat' }, { token: sender.access_token });
    assert.equal(created.status, 200);
    rooms.push(created.body.room_id);
    assert.equal((await servers[0]!.api.post(`/v3/join/${enc(created.body.room_id)}`, {}, { token: reader.access_token })).status, 200);
  }

  const start = await servers[0]!.api.get<Sync>(`/v3/sync?filter=${FILTER}`, { token: reader.access_token });
  assert.equal(start.status, 200);
  const seen = new Map<string, number>();
  let since = start.body.next_batch;
  let sending = true;
  let syncs = 0;
  const read = async (i: number) => {
    const res = await servers[i % servers.length]!.api.get<Sync>(`/v3/sync?since=${enc(since)}&timeout=0&filter=${FILTER}`, { token: reader.access_token });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    for (const [roomId, room] of Object.entries(res.body.rooms?.join ?? {})) {
      assert.equal(room.timeline.limited, false, `an incremental timeline of ${roomId} was limited`);
      for (const event of room.timeline.events) if (event.type === 'm.room.message') seen.set(event.event_id, (seen.get(event.event_id) ?? 0) + 1);
    }
    since = res.body.next_batch;
    syncs++;
  };
  const reading = (async () => {
    for (let i = 0; sending; i++) await read(i);
  })();

  const sends: Promise<string>[] = [];
  senders.forEach((sender, s) => {
    const api = servers[s % servers.length]!.api;
    sends.push(
      (async () => {
        const ids: string[] = [];
        for (let m = 0; m < PER_SENDER; m++) {
          const res = await api.put<{ event_id: string }>(`/v3/rooms/${enc(rooms[s]!)}/send/m.room.message/m${m}`, { msgtype: 'm.text', body: `${s}-${m}` }, { token: sender.access_token });
          assert.equal(res.status, 200, JSON.stringify(res.body));
          ids.push(res.body.event_id);
        }
        return ids.join(' ');
      })(),
    );
  });
  const sent = (await Promise.all(sends)).flatMap((ids) => ids.split(' '));
  sending = false;
  await reading;
  // Everything is committed now: one last sync picks up what the flood's last syncs had not reached.
  await read(0);

  assert.ok(syncs > 3, `the reader synced during the flood (${syncs} syncs)`);
  const missing = sent.filter((id) => !seen.has(id));
  assert.deepEqual(missing, [], `${missing.length} of ${sent.length} messages never reached the reader's incremental syncs`);
  const twice = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
  assert.deepEqual(twice, [], 'no message reached the reader twice');
  assert.equal(seen.size, sent.length);
}

for (const engine of ENGINES) {
  describe(`sync: no message skipped while sends flood (${engine})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer(engine);
    });
    after(() => server.close());

    it(`gives a reader syncing without pause each of ${SENDERS * PER_SENDER} messages sent at once into ${SENDERS} rooms, once`, () => flood([server]));
  });
}

describe('sync: no message skipped while sends flood through two processes on one PostgreSQL database', () => {
  const servers = twoProcessesOnePostgres();

  it('gives a reader syncing on both processes in turn each message sent through either, once', () => flood([servers.first, servers.second]));
});
