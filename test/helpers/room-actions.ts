import assert from 'node:assert/strict';
import type { TestServer } from './server.js';

/** A registered user as the tests hold one. */
export interface User {
  user_id: string;
  access_token: string;
  device_id: string;
}

export type EphemeralEvent = { type: string; content: Record<string, unknown> };
export type SyncBody = {
  next_batch: string;
  account_data: { events: EphemeralEvent[] };
  rooms: {
    join: Record<string, { ephemeral: { events: EphemeralEvent[] }; account_data: { events: EphemeralEvent[] }; timeline: { events: { event_id: string; type: string }[] } }>;
  };
};

export const enc = encodeURIComponent;

/** The room actions tests of receipts, typing and room account data share, over HTTP against `server()`. */
export function roomActions(server: () => TestServer) {
  let txn = 0;
  const api = () => server().api;
  return {
    sync: async (who: User, query: Record<string, string | number | object> = {}): Promise<SyncBody> => {
      const params = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)]));
      const res = await api().get<SyncBody>(`/v3/sync?${params}`, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    },
    createRoom: async (who: User, body: Record<string, unknown> = { preset: 'public_chat' }): Promise<string> => {
      const res = await api().post<{ room_id: string }>('/v3/createRoom', body, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.room_id;
    },
    join: async (who: User, roomId: string): Promise<void> => {
      const res = await api().post(`/v3/rooms/${enc(roomId)}/join`, {}, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    },
    send: async (who: User, roomId: string, content: string | Record<string, unknown>): Promise<string> => {
      const body = typeof content === 'string' ? { msgtype: 'm.text', body: content } : content;
      const res = await api().put<{ event_id: string }>(`/v3/rooms/${enc(roomId)}/send/m.room.message/t${++txn}`, body, { token: who.access_token });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.event_id;
    },
  };
}

/** The room's ephemeral events of one type in a sync answer (none when the room is absent). */
export function ephemeralOf(sync: SyncBody, roomId: string, type: string): EphemeralEvent[] {
  return (sync.rooms.join[roomId]?.ephemeral.events ?? []).filter((e) => e.type === type);
}
