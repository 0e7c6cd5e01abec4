import { randomBytes } from 'node:crypto';
import type autocannon from 'autocannon';
import type { ChildHandle } from './children.js';
import type { Alongside } from './run.js';
import { median, type Row } from './report.js';

/**
 * The room cases of `npm run bench` (`--only roomSend`, or `--only roomSendOneRoom` for the second):
 * PUT /rooms/{roomId}/send/m.room.message/{txnId}, each of the run's connections bound to its own
 * user, with a fresh transaction ID per request,
 *
 * - roomSend: every connection in a room of its own (as many rooms as connections): the rooms'
 *   locks never meet, what is shared is the database (SQLite's one writer, PostgreSQL's pool and
 *   the global stream position every event takes);
 * - roomSendOneRoom: every connection into one room, joined by all of them: the room's lock orders
 *   every event, so events are written one at a time.
 *
 * - roomSendStorm, roomSendOneRoomStorm: the same two loads while other users of one sender's room
 *   (the first sender's own room, or the shared room) post m.read receipts into it at a fixed
 *   100/s, each on the latest event the first sender has sent there: does a receipt storm slow sends?
 *   The receipts' server CPU counts in the case's CPU per send.
 *
 * Beside each timed run, a probe measures how long a message takes to reach a room-mate's waiting
 * /sync (from the send request to the long-poll's answer holding the event), in a quiet room of its
 * own, a message every quarter second or so (its work counts in the server's CPU per request, a
 * little). Until /sync returns room events it reports itself as pending.
 */

export const ROOM_CASE_NAMES = [
  'PUT send, a room per connection (roomSend)',
  'PUT send, every connection into one room (roomSendOneRoom)',
  'PUT send, a room per connection, receipts storming one (roomSendStorm)',
  'PUT send, every connection into one room, receipts storming it (roomSendOneRoomStorm)',
  'PUT send, a room per connection, at a fixed rate (roomSendPaced)',
];

/**
 * The paced case's offered sends/s (BENCH_PACED_RATE): below what either engine manages flat out, so
 * that the probe's latency is the server's and not a queue's. Flat out, 50 connections each waiting
 * for its answer keep 50 sends queued, and a send waits for the 49 before it (Little's law: 50 / the
 * rate); the probe's message is one of them.
 */
const PACED_RATE = Number(process.env.BENCH_PACED_RATE ?? 250);

/** Each storm case beside its quiet twin: sends/s and CPU per send, and what the storm achieved. */
export function stormComparison(rows: Row[]): string[] {
  const pairs = [[ROOM_CASE_NAMES[0]!, ROOM_CASE_NAMES[2]!], [ROOM_CASE_NAMES[1]!, ROOM_CASE_NAMES[3]!]] as const;
  return rows.flatMap((storm) => {
    const pair = pairs.find(([, name]) => storm.name.startsWith(name));
    const quiet = pair && rows.find((r) => r.name === storm.name.replace(pair[1], pair[0]));
    if (!pair || !quiet || !storm.alongside) return [];
    const a = storm.alongside;
    const change = (x: number, y: number) => `${(((y - x) / x) * 100).toFixed(1)}%`;
    return [
      `${storm.name}: ${storm.rps.toFixed(0)} sends/s vs ${quiet.rps.toFixed(0)} without (${change(quiet.rps, storm.rps)}), ` +
        `CPU ${storm.cpuPerRequestUs.toFixed(0)} vs ${quiet.cpuPerRequestUs.toFixed(0)} µs/send (${change(quiet.cpuPerRequestUs, storm.cpuPerRequestUs)}); ` +
        (storm.pgCpuPerRequestUs !== undefined && quiet.pgCpuPerRequestUs !== undefined
          ? `PostgreSQL's CPU ${storm.pgCpuPerRequestUs.toFixed(0)} vs ${quiet.pgCpuPerRequestUs.toFixed(0)} µs/send (${change(quiet.pgCpuPerRequestUs, storm.pgCpuPerRequestUs)}); `
          : '') +
        `receipts ${a.rps.toFixed(1)}/s of ${a.rate}/s offered, p99 ${a.p99} ms, ${a.non2xx} non-2xx, ${a.errors} errors`,
    ];
  });
}

/**
 * The storm: receipts/s offered, by its users over its connections. A rate-limited connection waits for
 * each answer, so at 2/s each the rate holds while a receipt takes up to half a second.
 */
const STORM_RATE = 100;
const STORM_USERS = 10;
const STORM_CONNECTIONS = 50;

/** What a room case needs from run.ts: a case shape, with a per-connection setup. */
export interface RoomCase {
  name: string;
  server: ChildHandle;
  method: 'PUT';
  path: string;
  headers: Record<string, string>;
  body: string;
  setupClient: (client: autocannon.Client) => void;
  before: () => Promise<void>;
  after: (result: autocannon.Result) => Promise<void>;
  note: string;
  alongside?: Alongside;
}

interface Session {
  user_id: string;
  access_token: string;
}

/**
 * Per timed run (warm-ups included): the run's sends, and the probe's latencies in ms, from the send
 * request to the sync's answer (p50, p99, max) and from the send's own answer to the sync's
 * (afterAnswerP50: the wake-up and the sync's work, the send's queueing left out).
 */
export interface ProbeRun {
  caseName: string;
  messagesPerSecond: number;
  samples: number;
  p50?: number;
  p99?: number;
  max?: number;
  afterAnswerP50?: number;
  afterAnswerP99?: number;
}

const enc = encodeURIComponent;
const ROOM_USER = (i: number) => `bench-room-${i}`;

async function call(base: string, method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${base}/_matrix/client${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function ok(base: string, method: string, path: string, body?: unknown, token?: string): Promise<Record<string, unknown>> {
  const res = await call(base, method, path, body, token);
  if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.json)}`);
  return res.json;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export class RoomSendBench {
  private users: Session[] = [];
  private ownRooms: string[] = [];
  private sharedRoom = '';
  private nextSlot = 0;
  private runPrefix = '';
  private probe?: Probe;
  private stormers: Session[] = [];
  /** Per room, the latest event the first sender has sent into it: what the storm's receipts point at. */
  private readonly latest = new Map<string, string>();
  /** Why the send-to-sync latency is not measured, when it is not. */
  probePending?: string;
  readonly probeRuns: ProbeRun[] = [];

  constructor(
    private readonly myelin: ChildHandle,
    /** One user (and one room of its own) per connection of a run. */
    private readonly connections: number,
    private readonly password: string,
    /** Appended to case names, to tell Myelins apart (run.ts --compare). */
    private readonly label = '',
  ) {}

  /** The localparts to seed the server with (the two probe users after the senders, then the storming users). */
  static seedUsers(connections: number, password: string): { localpart: string; password: string }[] {
    return Array.from({ length: connections + 2 + STORM_USERS }, (_, i) => ({ localpart: ROOM_USER(i), password }));
  }

  /** Logs the users in, makes the rooms and the shared room, and checks a send by hand. */
  async setUp(): Promise<void> {
    const base = this.myelin.url;
    const login = async (i: number): Promise<Session> => {
      const json = await ok(base, 'POST', '/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: ROOM_USER(i) }, password: this.password });
      return { user_id: json.user_id as string, access_token: json.access_token as string };
    };
    // A few at a time: argon2id at the default cost on a small machine.
    const all: Session[] = [];
    const count = this.connections + 2 + STORM_USERS;
    for (let i = 0; i < count; i += 4) {
      all.push(...(await Promise.all(Array.from({ length: Math.min(4, count - i) }, (_, j) => login(i + j)))));
    }
    this.users = all.slice(0, this.connections);
    for (const user of this.users) this.ownRooms.push((await ok(base, 'POST', '/v3/createRoom', { preset: 'private_chat' }, user.access_token)).room_id as string);
    this.sharedRoom = (await ok(base, 'POST', '/v3/createRoom', { preset: 'public_chat' }, this.users[0]!.access_token)).room_id as string;
    for (const user of this.users.slice(1)) await ok(base, 'POST', `/v3/join/${enc(this.sharedRoom)}`, {}, user.access_token);
    const sent = await ok(base, 'PUT', `/v3/rooms/${enc(this.sharedRoom)}/send/m.room.message/check`, { msgtype: 'm.text', body: 'check' }, this.users[1]!.access_token);
    if (typeof sent.event_id !== 'string') throw new Error(`send answered no event_id: ${JSON.stringify(sent)}`);

    // The storming users join the first sender's own room (by invitation) and the shared room, and check a receipt.
    this.stormers = all.slice(this.connections + 2);
    const first = this.users[0]!;
    for (const user of this.stormers) {
      await ok(base, 'POST', `/v3/rooms/${enc(this.ownRooms[0]!)}/invite`, { user_id: user.user_id }, first.access_token);
      for (const room of [this.ownRooms[0]!, this.sharedRoom]) await ok(base, 'POST', `/v3/join/${enc(room)}`, {}, user.access_token);
    }
    for (const room of [this.ownRooms[0]!, this.sharedRoom]) {
      const event = await ok(base, 'PUT', `/v3/rooms/${enc(room)}/send/m.room.message/storm-check`, { msgtype: 'm.text', body: 'check' }, first.access_token);
      this.latest.set(room, event.event_id as string);
      await ok(base, 'POST', `/v3/rooms/${enc(room)}/receipt/m.read/${enc(event.event_id as string)}`, {}, this.stormers[0]!.access_token);
    }

    const [sender, mate] = all.slice(this.connections) as [Session, Session];
    const probeRoom = (await ok(base, 'POST', '/v3/createRoom', { preset: 'public_chat' }, sender.access_token)).room_id as string;
    await ok(base, 'POST', `/v3/join/${enc(probeRoom)}`, {}, mate.access_token);
    const probe = new Probe(base, sender, mate, probeRoom);
    this.probePending = await probe.check();
    if (this.probePending === undefined) this.probe = probe;
  }

  private sendCase(name: string, roomOf: (slot: number) => string): RoomCase {
    const body = JSON.stringify({ msgtype: 'm.text', body: 'Hello from the benchmark, a message of ordinary length.' });
    const caseName = `${name}${this.label}`;
    return {
      name: caseName,
      server: this.myelin,
      method: 'PUT',
      // Replaced per connection by setupClient.
      path: '/_matrix/client/versions',
      headers: { 'content-type': 'application/json' },
      body,
      setupClient: (client) => {
        const slot = this.nextSlot++ % this.connections;
        const user = this.users[slot]!;
        const path = `/_matrix/client/v3/rooms/${enc(roomOf(slot))}/send/m.room.message/`;
        const prefix = `${this.runPrefix}.${slot}.`;
        let n = 0;
        const room = roomOf(slot);
        client.setRequests([
          {
            method: 'PUT',
            path: `${path}${prefix}${n}`,
            headers: { 'content-type': 'application/json', authorization: `Bearer ${user.access_token}` },
            body,
            setupRequest: (req) => ({ ...req, path: `${path}${prefix}${n++}` }),
            ...(slot === 0 ? { onResponse: (status: number, answer: string) => status === 200 && this.latest.set(room, (JSON.parse(answer) as { event_id: string }).event_id) } : {}),
          },
        ]);
      },
      before: async () => {
        this.nextSlot = 0;
        this.runPrefix = randomBytes(4).toString('hex');
        this.probe?.start();
      },
      after: async (result) => {
        if (!this.probe) return;
        const samples = await this.probe.stop();
        const sorted = samples.map((x) => x.total).sort((a, b) => a - b);
        const afterAnswer = samples.map((x) => x.afterAnswer).sort((a, b) => a - b);
        this.probeRuns.push({
          caseName,
          messagesPerSecond: Math.round(result.requests.average),
          samples: sorted.length,
          ...(sorted.length > 0 ? { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1)!, afterAnswerP50: percentile(afterAnswer, 50), afterAnswerP99: percentile(afterAnswer, 99) } : {}),
        });
      },
      note: '',
    };
  }

  /** STORM_RATE m.read receipts/s into the room, each on the latest event the first sender sent there. */
  private storm(room: string): Alongside {
    const path = (eventId: string) => `/_matrix/client/v3/rooms/${enc(room)}/receipt/m.read/${enc(eventId)}`;
    let next = 0;
    return {
      name: `POST receipt/m.read into ${room}${this.label}`,
      method: 'POST',
      path: path(this.latest.get(room)!),
      connections: STORM_CONNECTIONS,
      rate: STORM_RATE,
      setupClient: (client) => {
        const user = this.stormers[next++ % STORM_USERS]!;
        client.setRequests([
          {
            method: 'POST',
            path: path(this.latest.get(room)!),
            headers: { 'content-type': 'application/json', authorization: `Bearer ${user.access_token}` },
            body: '{}',
            setupRequest: (req) => ({ ...req, path: path(this.latest.get(room)!) }),
          },
        ]);
      },
    };
  }

  cases(): RoomCase[] {
    const own = this.sendCase(ROOM_CASE_NAMES[0]!, (slot) => this.ownRooms[slot]!);
    own.note = `${this.connections} users, each sending into a private room of its own`;
    const one = this.sendCase(ROOM_CASE_NAMES[1]!, () => this.sharedRoom);
    one.note = `${this.connections} users, all joined to one public room, all sending into it`;
    const ownStorm = { ...this.sendCase(ROOM_CASE_NAMES[2]!, (slot) => this.ownRooms[slot]!), alongside: this.storm(this.ownRooms[0]!) };
    ownStorm.note = `as roomSend, while ${STORM_USERS} other users of the first sender's room post ${STORM_RATE} m.read receipts/s into it`;
    const oneStorm = { ...this.sendCase(ROOM_CASE_NAMES[3]!, () => this.sharedRoom), alongside: this.storm(this.sharedRoom) };
    oneStorm.note = `as roomSendOneRoom, while ${STORM_USERS} other users of the room post ${STORM_RATE} m.read receipts/s into it`;
    const paced = { ...this.sendCase(ROOM_CASE_NAMES[4]!, (slot) => this.ownRooms[slot]!), overallRate: PACED_RATE };
    paced.note = `as roomSend, offering ${PACED_RATE} sends/s in all: the probe's latency below capacity`;
    return [own, ownStorm, one, oneStorm, paced];
  }

  /** Send-to-sync latency per case, the median over its timed runs (warm-ups left out). */
  probeSummary(timedRunsPerCase: number): { caseName: string; samples: number; p50_ms: number; p99_ms: number; after_answer_p50_ms: number; after_answer_p99_ms: number }[] | string {
    if (this.probePending !== undefined) return `pending: ${this.probePending}`;
    const byCase = new Map<string, ProbeRun[]>();
    for (const run of this.probeRuns) byCase.set(run.caseName, [...(byCase.get(run.caseName) ?? []), run]);
    return [...byCase].map(([caseName, runs]) => {
      const timed = runs.slice(-timedRunsPerCase).filter((r) => r.p50 !== undefined);
      return {
        caseName,
        samples: timed.reduce((n, r) => n + r.samples, 0),
        p50_ms: median(timed.map((r) => r.p50!)),
        p99_ms: median(timed.map((r) => r.p99!)),
        after_answer_p50_ms: median(timed.map((r) => r.afterAnswerP50!)),
        after_answer_p99_ms: median(timed.map((r) => r.afterAnswerP99!)),
      };
    });
  }
}

/**
 * A message sent by one user, timed until a room-mate's waiting /sync answers with it, over and over
 * while a run lasts.
 */
interface ProbeSample {
  /** From the send request to the sync's answer holding the message. */
  total: number;
  /** From the send's answer to the sync's (negative when the sync answered first). */
  afterAnswer: number;
}

class Probe {
  private running?: Promise<ProbeSample[]>;
  private stopping = false;
  private n = 0;

  constructor(
    private readonly base: string,
    private readonly sender: Session,
    private readonly mate: Session,
    private readonly roomId: string,
  ) {}

  private async sync(since: string | undefined, timeoutMs: number): Promise<{ next_batch: string; eventIds: string[] }> {
    const query = since === undefined ? '?timeout=0' : `?since=${enc(since)}&timeout=${timeoutMs}`;
    const json = await ok(this.base, 'GET', `/v3/sync${query}`, undefined, this.mate.access_token);
    const rooms = json.rooms as { join?: Record<string, { timeline?: { events?: { event_id: string }[] } }> } | undefined;
    const events = rooms?.join?.[this.roomId]?.timeline?.events ?? [];
    return { next_batch: json.next_batch as string, eventIds: events.map((e) => e.event_id) };
  }

  /** One message through to the waiting sync; its latencies in ms, or undefined when the sync never showed it. */
  private async once(since: string, waitMs: number): Promise<{ latency?: ProbeSample; next_batch: string }> {
    const waiting = this.sync(since, waitMs);
    // Give the long-poll time to reach the server and wait there before the message is sent.
    await new Promise((r) => setTimeout(r, 50));
    const start = performance.now();
    const sent = await ok(this.base, 'PUT', `/v3/rooms/${enc(this.roomId)}/send/m.room.message/probe.${Date.now()}.${this.n++}`, { msgtype: 'm.text', body: 'probe' }, this.sender.access_token);
    const answered = performance.now();
    let res = await waiting;
    // Woken by something else first (e.g. presence): keep syncing until the message comes.
    while (!res.eventIds.includes(sent.event_id as string)) {
      if (performance.now() - start > waitMs) return { next_batch: res.next_batch };
      res = await this.sync(res.next_batch, waitMs);
    }
    const end = performance.now();
    return { latency: { total: end - start, afterAnswer: end - answered }, next_batch: res.next_batch };
  }

  /** Undefined when /sync delivers room events to a waiting room-mate; else why the probe cannot run. */
  async check(): Promise<string | undefined> {
    const { next_batch } = await this.sync(undefined, 0);
    const { latency } = await this.once(next_batch, 3000);
    return latency === undefined ? '/sync did not return the room-mate\'s message (no room events in /sync yet)' : undefined;
  }

  start(): void {
    this.stopping = false;
    this.running = (async () => {
      const latencies: ProbeSample[] = [];
      let { next_batch } = await this.sync(undefined, 0);
      while (!this.stopping) {
        const res = await this.once(next_batch, 10_000);
        next_batch = res.next_batch;
        if (res.latency !== undefined) latencies.push(res.latency);
        // At most a few messages a second: the probe's sends and syncs count in the server's CPU per request.
        await new Promise((r) => setTimeout(r, 200));
      }
      return latencies;
    })();
  }

  async stop(): Promise<ProbeSample[]> {
    this.stopping = true;
    return (await this.running) ?? [];
  }
}
