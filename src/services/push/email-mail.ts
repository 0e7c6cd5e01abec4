/**
 * What a notification mail says (Synapse's mailer): a summary line for the subject, and per room
 * (most recent first) its title, link and messages, under Synapse's template variable names so that
 * an admin's Synapse notif_mail templates render.
 */
import type { EmailConfig } from '../../config/sections/email.js';
import { substitute } from '../../config/sections/email.js';
import type { Store } from '../../storage/index.js';
import type { PushNotificationRow } from '../../storage/push.js';
import type { PusherRow } from '../../storage/pushers.js';
import { currentStateEvents, eventFromRow } from '../rooms/event-creator.js';
import { stateKeyOf, type StoredEvent } from '../rooms/pdu.js';
import type { EmailUnsubscribe } from './unsubscribe.js';

export interface MailReason {
  room_id: string;
  now: number;
  received_at: number;
  delay_before_mail_ms: number;
  last_sent_ts: number;
  throttle_ms: number;
}

export interface ComposedMail {
  subject: string;
  vars: Record<string, unknown>;
  unsubscribeLink: string;
}

interface Room {
  roomId: string;
  /** m.room.name, else the canonical alias. */
  name: string | undefined;
  /** The name, else one made from the other members' names. */
  title: string;
  avatarUrl: string | undefined;
  names: Map<string, string>;
  notifs: { row: PushNotificationRow; event: StoredEvent }[];
}

export class NotificationMailer {
  constructor(
    private readonly store: Store,
    private readonly config: EmailConfig,
    private readonly unsubscribe: EmailUnsubscribe,
  ) {}

  /** The mail of these notifications; undefined when none of their events is left to tell of. */
  async compose(pusher: PusherRow, notifications: readonly PushNotificationRow[], reason: MailReason): Promise<ComposedMail | undefined> {
    const events = new Map((await this.store.events.getMany(notifications.map((n) => n.event_id))).map((row) => [row.event_id, eventFromRow(row)]));
    const rooms = new Map<string, Room>();
    for (const row of notifications) {
      const event = events.get(row.event_id);
      if (!event) continue;
      let room = rooms.get(row.room_id);
      if (!room) rooms.set(row.room_id, (room = await this.room(row.room_id, pusher.user_id)));
      room.notifs.push({ row, event });
    }
    const ordered = [...rooms.values()].sort((a, b) => Number(b.notifs[b.notifs.length - 1]!.row.ts) - Number(a.notifs[a.notifs.length - 1]!.row.ts));
    const reasonRoom = rooms.get(reason.room_id) ?? ordered[0];
    if (!reasonRoom) return undefined;
    const user = await this.store.users.get(pusher.user_id);
    // Several rooms: the summary names the room whose notification was due.
    const subject = ordered.length === 1 ? this.singleRoomSummary(reasonRoom, pusher.user_id) : this.say(this.config.subjects.messages_in_room_and_others, { room: reasonRoom.title });
    const unsubscribeLink = this.unsubscribe.link(pusher);
    return {
      subject,
      unsubscribeLink,
      vars: {
        user_display_name: user?.displayname ?? pusher.user_id,
        unsubscribe_link: unsubscribeLink,
        summary_text: subject,
        rooms: ordered.map((room) => this.roomVars(room, pusher.user_id)),
        reason: { ...reason, room_name: reasonRoom.title },
      },
    };
  }

  private async room(roomId: string, userId: string): Promise<Room> {
    const state = await currentStateEvents(this.store, roomId, [stateKeyOf('m.room.name', ''), stateKeyOf('m.room.canonical_alias', ''), stateKeyOf('m.room.avatar', '')]);
    const nameOf = (type: string, field: string) => {
      const value = state.get(stateKeyOf(type, ''))?.content[field];
      return typeof value === 'string' && value !== '' ? value : undefined;
    };
    const name = nameOf('m.room.name', 'name') ?? nameOf('m.room.canonical_alias', 'alias');
    const members = await this.store.rooms.members(roomId);
    const names = new Map(members.map((m) => [m.user_id, m.displayname ?? m.user_id]));
    const others = members.filter((m) => m.user_id !== userId && (m.membership === 'join' || m.membership === 'invite')).map((m) => names.get(m.user_id)!);
    return { roomId, name, title: name ?? membersTitle(others) ?? roomId, avatarUrl: nameOf('m.room.avatar', 'url'), names, notifs: [] };
  }

  private roomVars(room: Room, userId: string): Record<string, unknown> {
    const invite = room.notifs.some(({ event }) => isInviteFor(event, userId));
    return {
      title: room.title,
      hash: ordinalTotal(room.roomId),
      invite,
      link: this.roomLink(room.roomId),
      avatar_url: room.avatarUrl,
      notifs: invite
        ? []
        : room.notifs.flatMap(({ row, event }) => {
            const message = this.messageVars(event, room);
            return message ? [{ link: this.eventLink(room.roomId, event.event_id), ts: Number(row.ts), messages: [message] }] : [];
          }),
    };
  }

  /** Messages and encrypted messages only, as Synapse; an encrypted one has no body (the server cannot read it). */
  private messageVars(event: StoredEvent, room: Room): Record<string, unknown> | undefined {
    if (event.type !== 'm.room.message' && event.type !== 'm.room.encrypted') return undefined;
    const vars: Record<string, unknown> = {
      event_type: event.type,
      is_historical: false,
      id: event.event_id,
      ts: event.origin_server_ts,
      sender_name: room.names.get(event.sender) ?? event.sender,
      sender_hash: ordinalTotal(event.sender),
    };
    if (event.type === 'm.room.encrypted') return vars;
    const { msgtype, body, url } = event.content;
    if (typeof msgtype === 'string') vars.msgtype = msgtype;
    if (typeof body === 'string') vars.body_text_plain = body;
    if (msgtype === 'm.image' && typeof url === 'string') vars.image_url = url;
    return vars;
  }

  private singleRoomSummary(room: Room, userId: string): string {
    const s = this.config.subjects;
    const invite = room.notifs.find(({ event }) => isInviteFor(event, userId));
    if (invite) {
      const person = room.names.get(invite.event.sender) ?? invite.event.sender;
      return room.name !== undefined ? this.say(s.invite_from_person_to_room, { person, room: room.name }) : this.say(s.invite_from_person, { person });
    }
    if (room.notifs.length === 1) {
      const person = room.names.get(room.notifs[0]!.event.sender);
      if (person !== undefined && room.name !== undefined) return this.say(s.message_from_person_in_room, { person, room: room.name });
      if (person !== undefined) return this.say(s.message_from_person, { person });
      return this.say(s.messages_in_room, { room: room.name ?? room.roomId });
    }
    if (room.name !== undefined) return this.say(s.messages_in_room, { room: room.name });
    return this.fromSenders(room);
  }

  private fromSenders(room: Room): string {
    const s = this.config.subjects;
    const senders = [...new Set(room.notifs.map(({ event }) => event.sender))];
    const person = room.names.get(senders[0]!) ?? senders[0]!;
    return this.say(senders.length === 1 ? s.messages_from_person : s.messages_from_person_and_others, { person });
  }

  private say(template: string, vars: Record<string, string>): string {
    return substitute(template, { app: this.config.app_name, ...vars });
  }

  /** Synapse's links: the configured client's, else matrix.to. */
  private roomLink(roomId: string): string {
    const base = this.clientBaseUrl();
    return base !== undefined ? `${base}/#/room/${roomId}` : `https://matrix.to/#/${roomId}`;
  }

  private eventLink(roomId: string, eventId: string): string {
    const base = this.clientBaseUrl();
    return base !== undefined ? `${base}/#/room/${roomId}/${eventId}` : `https://matrix.to/#/${roomId}/${eventId}`;
  }

  private clientBaseUrl(): string | undefined {
    return this.config.client_base_url ?? this.config.riot_base_url;
  }
}

function isInviteFor(event: StoredEvent, userId: string): boolean {
  return event.type === 'm.room.member' && event.state_key === userId && event.content.membership === 'invite';
}

/** A room without a name, called after its members, as clients do. */
function membersTitle(others: string[]): string | undefined {
  if (others.length === 0) return undefined;
  if (others.length === 1) return others[0];
  if (others.length === 2) return `${others[0]} and ${others[1]}`;
  return `${others[0]} and ${others.length - 1} others`;
}

/** Synapse's `hash`: the sum of the string's code points, for templates to pick a default avatar. */
function ordinalTotal(s: string): number {
  let total = 0;
  for (const ch of s) total += ch.codePointAt(0)!;
  return total;
}
