/** Pushers, and what push delivery keeps (migration 0017). Times are ms since the epoch. */

/** A user's pusher: where their notifications go (POST /pushers/set). */
export interface PushersTable {
  user_id: string;
  app_id: string;
  pushkey: string;
  /** 'http' or 'email'. */
  kind: string;
  app_display_name: string;
  device_display_name: string;
  profile_tag: string | null;
  lang: string;
  /** JSON object: the pusher's data (url, format, and whatever else the client put there). */
  data: string;
  /** The device whose access token set it: deleting the device deletes the pusher, as in Synapse. */
  device_id: string | null;
  /** When the pushkey was last set (sent to the gateway as pushkey_ts, in seconds). */
  pushkey_ts: number;
  /** Email pushers: the stream position up to which notifications were mailed (migration 0022). */
  mailed_pos: number | null;
}

/** Per email pusher and room: when it last mailed, and how long the room waits after that. */
export interface EmailPusherThrottleTable {
  user_id: string;
  app_id: string;
  pushkey: string;
  room_id: string;
  last_sent_ts: number;
  throttle_ms: number;
}

/** How far along the global stream push evaluation has got (one row, name 'events'). */
export interface PushProgressTable {
  name: string;
  position: number;
}

/**
 * Unread notifications per user, room and thread (`main`: the main timeline), counted in the
 * transaction of the event that notifies; a read receipt recounts them (migration 0019).
 */
export interface PushCountsTable {
  user_id: string;
  room_id: string;
  thread_id: string;
  notification_count: number;
  highlight_count: number;
  /** The stream position of the last change (the event's or the receipt's). */
  stream_pos: number;
}

/** Each event that notified a user, for GET /notifications. */
export interface PushNotificationsTable {
  user_id: string;
  room_id: string;
  /** `main`, or the root of the thread the event is in. */
  thread_id: string;
  event_id: string;
  stream_pos: number;
  /** JSON array: the matching rule's actions. */
  actions: string;
  highlight: number;
  ts: number;
}

export interface PushTables {
  pushers: PushersTable;
  push_progress: PushProgressTable;
  push_counts: PushCountsTable;
  push_notifications: PushNotificationsTable;
  email_pusher_throttle: EmailPusherThrottleTable;
}
