/**
 * The m.room.power_levels content and preset state of a new room (POST /createRoom, spec
 * data/api/client-server/create_room.yaml). The default levels are Synapse's, so rooms made here
 * look the same to clients as rooms made there.
 */
import type { JsonObject } from '../../validate.js';

export type RoomPreset = 'private_chat' | 'trusted_private_chat' | 'public_chat';

export interface PresetSettings {
  /** m.room.join_rules `join_rule`. */
  joinRule: 'invite' | 'public';
  /** m.room.history_visibility `history_visibility`. */
  historyVisibility: 'shared';
  /** m.room.guest_access `guest_access`; none for `forbidden`, which an absent event means (Synapse sends none then). */
  guestAccess: 'can_join' | undefined;
  /** "All invitees are given the same power level as the room creator." */
  inviteesGetCreatorLevel: boolean;
  /** Applied over the default power levels before the client's power_level_content_override. */
  powerLevelOverride: JsonObject;
}

/** The preset table of create_room.yaml; the private presets also let any member invite, as Synapse's do. */
export const PRESETS: Readonly<Record<RoomPreset, Readonly<PresetSettings>>> = {
  private_chat: {
    joinRule: 'invite',
    historyVisibility: 'shared',
    guestAccess: 'can_join',
    inviteesGetCreatorLevel: false,
    powerLevelOverride: { invite: 0 },
  },
  trusted_private_chat: {
    joinRule: 'invite',
    historyVisibility: 'shared',
    guestAccess: 'can_join',
    inviteesGetCreatorLevel: true,
    powerLevelOverride: { invite: 0 },
  },
  public_chat: {
    joinRule: 'public',
    historyVisibility: 'shared',
    guestAccess: undefined,
    inviteesGetCreatorLevel: false,
    powerLevelOverride: {},
  },
};

export function isRoomPreset(value: unknown): value is RoomPreset {
  return value === 'private_chat' || value === 'trusted_private_chat' || value === 'public_chat';
}

/** The creator's level in the default content (room versions 1 to 11 list the creator in `users`). */
export const CREATOR_POWER_LEVEL = 100;

/** The default content with no preset applied: the creator at 100, everyone else at 0. */
export function defaultPowerLevels(creator: string): JsonObject {
  return {
    users: { [creator]: CREATOR_POWER_LEVEL },
    users_default: 0,
    events: {
      'm.room.name': 50,
      'm.room.power_levels': 100,
      'm.room.history_visibility': 100,
      'm.room.canonical_alias': 50,
      'm.room.avatar': 50,
      'm.room.tombstone': 100,
      'm.room.server_acl': 100,
      'm.room.encryption': 100,
    },
    events_default: 0,
    state_default: 50,
    ban: 50,
    kick: 50,
    redact: 50,
    invite: 50,
    notifications: { room: 50 },
  };
}

export interface InitialPowerLevelsOptions {
  creator: string;
  preset: RoomPreset;
  /** The users of createRoom's `invite`; under trusted_private_chat they get the creator's level. */
  invitees?: readonly string[];
  /** createRoom's power_level_content_override: each of its top-level keys replaces the generated one. */
  override?: JsonObject;
}

/**
 * The content of a new room's m.room.power_levels event: the defaults, then the preset (its
 * overrides, and trusted_private_chat's invitees at the creator's level), then the client's override,
 * shallowly ("applied on top of the generated content": an override's `users` replaces the whole map).
 */
export function initialPowerLevels({ creator, preset, invitees = [], override = {} }: InitialPowerLevelsOptions): JsonObject {
  const settings = PRESETS[preset];
  const content = defaultPowerLevels(creator);
  if (settings.inviteesGetCreatorLevel) {
    const users = content['users'] as Record<string, number>;
    for (const invitee of invitees) users[invitee] = CREATOR_POWER_LEVEL;
  }
  // Spread, not Object.assign: an override key such as `__proto__` stays an ordinary key.
  return { ...content, ...structuredClone(settings.powerLevelOverride), ...structuredClone(override) };
}
