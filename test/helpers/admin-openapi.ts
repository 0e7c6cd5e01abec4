/**
 * Response shapes of Synapse's admin API as its documentation gives them (docs/admin_api/
 * user_admin_api.md, rooms.md, registration_tokens.md, media_admin_api.md, event_reports.md, version_api.md), for the routes Myelin
 * serves: every admin answer a test receives is checked against these.
 */

const userId = { type: 'string', format: 'mx-user-id' };
const int = { type: 'integer' };
const bool = { type: 'boolean' };
const str = { type: 'string' };
const nullableStr = { type: ['string', 'null'] };
const nullableInt = { type: ['integer', 'null'] };
const obj = (properties: Record<string, object>, required = Object.keys(properties), extra: Record<string, object> = {}) => ({
  type: 'object',
  properties: { ...properties, ...extra },
  required,
});
const empty = { type: 'object', maxProperties: 0 };

const listedUser = obj({
  name: userId,
  is_guest: bool,
  admin: bool,
  user_type: nullableStr,
  deactivated: bool,
  erased: bool,
  shadow_banned: bool,
  displayname: nullableStr,
  avatar_url: nullableStr,
  creation_ts: int,
  last_seen_ts: nullableInt,
  locked: bool,
});
const userDetails = obj({
  name: userId,
  displayname: nullableStr,
  threepids: { type: 'array', items: obj({ medium: { enum: ['email', 'msisdn'] }, address: str, added_at: int, validated_at: int }) },
  avatar_url: nullableStr,
  is_guest: bool,
  admin: bool,
  deactivated: bool,
  erased: bool,
  shadow_banned: bool,
  creation_ts: int,
  last_seen_ts: nullableInt,
  external_ids: { type: 'array' },
  user_type: nullableStr,
  locked: bool,
});
const device = obj({ device_id: str, user_id: userId }, ['device_id', 'user_id'], { display_name: str, last_seen_ip: str, last_seen_ts: int, dehydrated: bool });
const whois = obj({
  user_id: userId,
  devices: {
    type: 'object',
    additionalProperties: obj({ sessions: { type: 'array', items: obj({ connections: { type: 'array', items: obj({ ip: str, last_seen: int }, ['ip', 'last_seen'], { user_agent: str }) } }) } }),
  },
});
const room = {
  room_id: { type: 'string', format: 'mx-room-id' },
  name: nullableStr,
  canonical_alias: nullableStr,
  joined_members: int,
  joined_local_members: int,
  version: str,
  creator: userId,
  encryption: nullableStr,
  federatable: bool,
  public: bool,
  join_rules: nullableStr,
  guest_access: nullableStr,
  history_visibility: nullableStr,
  state_events: int,
  room_type: nullableStr,
};
const registrationToken = obj({ token: { type: 'string', pattern: '^[A-Za-z0-9._~-]{1,64}$' }, uses_allowed: nullableInt, pending: int, completed: int, expiry_time: nullableInt });
const userIds = { type: 'array', items: userId };
const eventReport = {
  id: { type: 'integer', minimum: 1 },
  received_ts: int,
  room_id: str,
  name: nullableStr,
  event_id: str,
  user_id: userId,
  reason: nullableStr,
  score: { type: ['integer', 'null'], minimum: -100, maximum: 0 },
  sender: userId,
  canonical_alias: nullableStr,
};

export interface AdminOperation {
  method: string;
  template: string;
  responses: Record<string, object>;
}

export function adminOperations(): AdminOperation[] {
  const v1 = '/_synapse/admin/v1';
  const v2 = '/_synapse/admin/v2';
  return [
    { method: 'GET', template: `${v2}/users`, responses: { 200: obj({ users: { type: 'array', items: listedUser }, total: int }, ['users', 'total'], { next_token: { type: 'string', pattern: '^\\d+$' } }) } },
    { method: 'GET', template: `${v2}/users/{userId}`, responses: { 200: userDetails } },
    { method: 'PUT', template: `${v2}/users/{userId}`, responses: { 200: userDetails, 201: userDetails } },
    { method: 'POST', template: `${v1}/deactivate/{userId}`, responses: { 200: obj({ id_server_unbind_result: { enum: ['success', 'no-support'] } }) } },
    { method: 'POST', template: `${v1}/reset_password/{userId}`, responses: { 200: empty } },
    { method: 'GET', template: `${v1}/whois/{userId}`, responses: { 200: whois } },
    { method: 'GET', template: `${v2}/users/{userId}/devices`, responses: { 200: obj({ devices: { type: 'array', items: device }, total: int }) } },
    { method: 'GET', template: `${v2}/users/{userId}/devices/{deviceId}`, responses: { 200: device } },
    { method: 'PUT', template: `${v2}/users/{userId}/devices/{deviceId}`, responses: { 200: empty } },
    { method: 'DELETE', template: `${v2}/users/{userId}/devices/{deviceId}`, responses: { 200: empty } },
    { method: 'POST', template: `${v2}/users/{userId}/delete_devices`, responses: { 200: empty } },
    { method: 'GET', template: `${v1}/threepid/{medium}/users/{address}`, responses: { 200: obj({ user_id: userId }) } },
    { method: 'GET', template: `${v1}/users/{userId}/admin`, responses: { 200: obj({ admin: bool }) } },
    { method: 'PUT', template: `${v1}/users/{userId}/admin`, responses: { 200: empty } },
    { method: 'POST', template: `${v1}/users/{userId}/login`, responses: { 200: obj({ access_token: { type: 'string', minLength: 1 } }) } },
    { method: 'GET', template: `${v1}/users/{userId}/joined_rooms`, responses: { 200: obj({ joined_rooms: { type: 'array', items: str }, total: int }) } },
    {
      method: 'GET',
      template: `${v1}/rooms`,
      responses: { 200: obj({ rooms: { type: 'array', items: obj(room) }, offset: int, total_rooms: int }, ['rooms', 'offset', 'total_rooms'], { next_batch: int, prev_batch: int }) },
    },
    { method: 'GET', template: `${v1}/rooms/{roomId}`, responses: { 200: obj({ ...room, topic: nullableStr, avatar: nullableStr, joined_local_devices: int, forgotten: bool }) } },
    { method: 'GET', template: `${v1}/rooms/{roomId}/members`, responses: { 200: obj({ members: userIds, total: int }) } },
    {
      method: 'DELETE',
      template: `${v1}/rooms/{roomId}`,
      responses: { 200: obj({ kicked_users: userIds, failed_to_kick_users: userIds, local_aliases: { type: 'array', items: str }, new_room_id: nullableStr }) },
    },
    { method: 'GET', template: `${v1}/registration_tokens`, responses: { 200: obj({ registration_tokens: { type: 'array', items: registrationToken } }) } },
    { method: 'POST', template: `${v1}/registration_tokens/new`, responses: { 200: registrationToken } },
    { method: 'GET', template: `${v1}/registration_tokens/{token}`, responses: { 200: registrationToken } },
    { method: 'PUT', template: `${v1}/registration_tokens/{token}`, responses: { 200: registrationToken } },
    { method: 'DELETE', template: `${v1}/registration_tokens/{token}`, responses: { 200: empty } },
    { method: 'POST', template: `${v1}/media/quarantine/{serverName}/{mediaId}`, responses: { 200: empty } },
    { method: 'POST', template: `${v1}/media/unquarantine/{serverName}/{mediaId}`, responses: { 200: empty } },
    { method: 'DELETE', template: `${v1}/media/{serverName}/{mediaId}`, responses: { 200: obj({ deleted_media: { type: 'array', items: str }, total: int }) } },
    {
      method: 'GET',
      template: `${v1}/event_reports`,
      responses: { 200: obj({ event_reports: { type: 'array', items: obj(eventReport) }, total: int }, ['event_reports', 'total'], { next_token: int }) },
    },
    { method: 'GET', template: `${v1}/event_reports/{reportId}`, responses: { 200: obj({ ...eventReport, event_json: { type: ['object', 'null'] } }) } },
    { method: 'DELETE', template: `${v1}/event_reports/{reportId}`, responses: { 200: empty } },
    { method: 'GET', template: `${v1}/server_version`, responses: { 200: obj({ server_version: { type: 'string', minLength: 1 } }) } },
  ];
}
