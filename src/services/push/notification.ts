/**
 * The push gateway request (push gateway API, POST /_matrix/push/v1/notify) for one event and one
 * pusher, as Sygnal takes it.
 */
import type { PusherRow } from '../../storage/pushers.js';
import type { JsonObject } from '../../validate.js';
import type { PushOutcome } from '../push-rules/evaluator.js';
import type { StoredEvent } from '../rooms/pdu.js';

/** What the room contributes to a notification. */
export interface NotificationRoom {
  name?: string;
  alias?: string;
  senderDisplayName?: string;
}

/** What the outbox holds for one push: where it goes and what is sent. */
export interface PushMessage {
  url: string;
  user_id: string;
  app_id: string;
  pushkey: string;
  body: { notification: JsonObject };
}

export function pushMessage(event: StoredEvent, userId: string, outcome: Readonly<Pick<PushOutcome, 'highlight' | 'tweaks'>>, pusher: PusherRow, room: NotificationRoom, unread: number): PushMessage {
  const { url, ...data } = JSON.parse(pusher.data) as JsonObject;
  const tweaks = { ...outcome.tweaks } as JsonObject;
  // As Synapse: an encrypted event (whose content the server cannot judge), a sound or a highlight is urgent.
  const prio = event.type === 'm.room.encrypted' || outcome.highlight || tweaks.sound !== undefined ? 'high' : 'low';
  const device = { ...deviceOf(pusher, data), tweaks };
  const notification: JsonObject = { event_id: event.event_id, room_id: event.room_id, counts: { unread }, prio, devices: [device] };
  if (data.format !== 'event_id_only') {
    // Not in the spec: the event ID again under its old name, which Synapse still sends (sytest checks for it).
    notification.id = event.event_id;
    notification.type = event.type;
    notification.sender = event.sender;
    if (room.senderDisplayName !== undefined) notification.sender_display_name = room.senderDisplayName;
    // Without a name, the room is named by its canonical alias, as clients (and Synapse's pushes) name it.
    const roomName = room.name ?? room.alias;
    if (roomName !== undefined) notification.room_name = roomName;
    if (room.alias !== undefined) notification.room_alias = room.alias;
    if (event.type === 'm.room.member') {
      notification.user_is_target = event.state_key === userId;
      // Not in the spec's list, but Synapse sends it and Sygnal reads it (an invite is told apart).
      if (typeof event.content.membership === 'string') notification.membership = event.content.membership;
    }
    notification.content = event.content;
  }
  return { url: String(url), user_id: userId, app_id: pusher.app_id, pushkey: pusher.pushkey, body: { notification } };
}

/**
 * A push without an event, only the user's new badge (rooms with unread notifications): what the push
 * gateway API allows "for notifications that only contain updated badge counts", sent when a read
 * receipt moved, so that a phone's badge clears once the messages are read elsewhere (as Synapse does).
 */
export function badgeMessage(userId: string, pusher: PusherRow, unread: number): PushMessage {
  const { url, ...data } = JSON.parse(pusher.data) as JsonObject;
  const notification: JsonObject = { counts: { unread }, prio: 'low', devices: [deviceOf(pusher, data)] };
  return { url: String(url), user_id: userId, app_id: pusher.app_id, pushkey: pusher.pushkey, body: { notification } };
}

/** The pusher as a notification's `devices` entry names it (its data without the url). */
function deviceOf(pusher: PusherRow, data: JsonObject): JsonObject {
  return { app_id: pusher.app_id, pushkey: pusher.pushkey, pushkey_ts: Math.floor(pusher.pushkey_ts / 1000), data };
}
