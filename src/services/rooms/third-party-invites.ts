import type { Config } from '../../config/index.js';
import { forbidden, MatrixError } from '../../errors.js';
import type { Store } from '../../storage/index.js';
import { isObject, type JsonObject } from '../../validate.js';
import type { RateLimiter } from '../ratelimiter.js';
import { keyIsValid, lookupAtIdentityServer, notTrusted, storeInviteAtIdentityServer, trustedIdServer, type TrustedIdServer } from '../threepid/identity-server.js';
import { AuthError, authEventsSelection, authorize, thirdPartyInviteSigner } from './auth-rules.js';
import { currentStateEvents, type EventCreator } from './event-creator.js';
import { stateKeyOf, type RoomVersionId } from './pdu.js';
import type { RoomService } from './rooms.js';

const THIRD_PARTY_INVITE = 'm.room.third_party_invite';

/** A 3PID to invite (POST /rooms/{roomId}/invite's second form, createRoom's invite_3pid). */
export interface ThreepidInvite {
  id_server: string;
  id_access_token: string;
  medium: string;
  address: string;
}

/** The identity server's signed proof that `mxid` owns the invited 3PID (onbind's `signed`, or a join's `third_party_signed`). */
export interface SignedProof extends JsonObject {
  mxid: string;
  token: string;
  signatures: JsonObject;
}

/** Invites in one onbind call at most: the endpoint takes no access token. */
const MAX_ONBIND_INVITES = 100;

/**
 * Third-party invites (client-server API "Third-party invites"): an invite by email address goes
 * through the identity server the client names, which must be one the admin trusts
 * (trusted_third_party_id_servers), as for binding. A bound address is invited as its Matrix user;
 * an unbound one gets an m.room.third_party_invite event with the identity server's token and keys.
 * Once its owner binds it, the identity server sends the signed proof (onbind), or the owner joins
 * with it (third_party_signed), and the invite is turned into a member invite from the original
 * inviter, which the auth rules check against the room's keys. Before that, the identity server is
 * asked whether the key that signed it is still valid, and only at a key validity URL on a trusted
 * identity server: room state names that URL, and any member with the invite level can set it.
 */
export class ThirdPartyInvites {
  constructor(
    private readonly store: Store,
    private readonly creator: EventCreator,
    private readonly rooms: RoomService,
    private readonly limiter: RateLimiter,
    private readonly config: Config,
  ) {}

  async invite(sender: string, roomId: string, invite: ThreepidInvite): Promise<void> {
    const server = trustedIdServer(this.config, invite.id_server);
    if (!server) throw notTrusted();
    await this.limiter.take(`3pid-invite:${sender}`, this.config.rc_third_party_invite);
    // Before the identity server hears of it: someone not in the room learns nothing, asks nothing.
    await this.requireCanInvite(sender, roomId);
    const timeout = this.config.identity_server_timeout;
    const mxid = await lookupAtIdentityServer(server, invite.id_access_token, invite, timeout);
    if (mxid !== undefined) {
      await this.rooms.invite(sender, roomId, mxid);
      return;
    }
    const stored = await storeInviteAtIdentityServer(server, invite.id_access_token, await this.inviteDetails(sender, roomId, invite), timeout);
    const [first] = stored.public_keys;
    await this.creator.write(roomId, async (room) => {
      await room.append(sender, {
        type: THIRD_PARTY_INVITE,
        state_key: stored.token,
        content: { display_name: stored.display_name, key_validity_url: first!.key_validity_url, public_key: first!.public_key, public_keys: stored.public_keys },
      });
    });
  }

  /**
   * PUT (or POST, as Synapse and sytest send it) /_matrix/federation/v1/3pid/onbind: the identity
   * server's proofs for the invites of an address just bound. Each becomes a member invite from the
   * original inviter; one that cannot (its key revoked, a bad signature, an unknown room) is
   * skipped. Returns how many were turned into invites.
   */
  async onBind(body: JsonObject): Promise<number> {
    const invites = Array.isArray(body.invites) ? body.invites.slice(0, MAX_ONBIND_INVITES) : [];
    let done = 0;
    for (const invite of invites) {
      if (!isObject(invite) || typeof invite.room_id !== 'string' || typeof invite.sender !== 'string' || !isSignedProof(invite.signed)) continue;
      try {
        await this.exchange(invite.room_id, invite.sender, invite.signed);
        done += 1;
      } catch (err) {
        if (!(err instanceof MatrixError)) throw err;
      }
    }
    return done;
  }

  /**
   * A join with `third_party_signed` (POST /join, /rooms/{roomId}/join): the proof's invite is made
   * first, then the join, each under the auth rules. M_FORBIDDEN when the proof is not the joiner's
   * or is refused.
   */
  async joinWithProof(userId: string, roomId: string, proof: JsonObject): Promise<void> {
    if (typeof proof.sender !== 'string' || !isSignedProof(proof)) throw new MatrixError(400, 'M_INVALID_PARAM', 'third_party_signed needs sender, mxid, token and signatures');
    if (proof.mxid !== userId) throw forbidden('third_party_signed is for another user');
    // The sender is part of what the identity server signed: the proof is kept as it came.
    const membership = (await this.store.rooms.member(roomId, userId))?.membership;
    if (membership !== 'invite' && membership !== 'join') await this.exchange(roomId, proof.sender, proof);
  }

  /** Turns a proof into the member invite, from the one who sent the third-party invite. */
  private async exchange(roomId: string, sender: string, signed: SignedProof): Promise<void> {
    if (!this.rooms.isLocalUser(signed.mxid) || !(await this.store.users.get(signed.mxid))) throw forbidden('The invitee is not a user of this server');
    const tpi = (await currentStateEvents(this.store, roomId, [stateKeyOf(THIRD_PARTY_INVITE, signed.token)])).get(stateKeyOf(THIRD_PARTY_INVITE, signed.token));
    if (!tpi) throw forbidden('The room has no third-party invite with this token');
    await this.requireValidKey(signed, tpi.content);
    const profile = await this.rooms.profileContent(signed.mxid);
    // The auth rules check the proof again against the room's state as the invite is written.
    const displayName = tpi.content.display_name;
    await this.creator.write(roomId, async (room) => {
      await room.append(sender, {
        type: 'm.room.member',
        state_key: signed.mxid,
        content: { membership: 'invite', ...profile, third_party_invite: { display_name: typeof displayName === 'string' ? displayName : '', signed } },
      });
    });
  }

  /** The identity server still vouches for the key that signed the proof (asked at its key_validity_url, on a trusted server only). */
  private async requireValidKey(signed: SignedProof, inviteContent: JsonObject): Promise<void> {
    const key = thirdPartyInviteSigner(signed, inviteContent);
    if (!key) throw forbidden('The third-party invite proof is not signed by any of the invite’s keys');
    const url = key.keyValidityUrl;
    if (url === undefined || !this.trustedUrl(url)) throw forbidden('The key of the third-party invite cannot be checked at a trusted identity server');
    let valid: boolean;
    try {
      valid = await keyIsValid(url, key.publicKey, this.config.identity_server_timeout);
    } catch {
      valid = false;
    }
    if (!valid) throw forbidden('The identity server no longer vouches for the key of the third-party invite');
  }

  private trustedUrl(url: string): TrustedIdServer | undefined {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return undefined;
    }
    const server = trustedIdServer(this.config, parsed.host);
    // The scheme too: an entry written as http://host (a local one) trusts plain HTTP there, and only there.
    return server && new URL(server.baseUrl).protocol === parsed.protocol ? server : undefined;
  }

  /** The auth rules' answer for the m.room.third_party_invite the sender would send now (joined, with the invite level). */
  private async requireCanInvite(sender: string, roomId: string): Promise<void> {
    const room = await this.store.rooms.get(roomId);
    if (!room) throw forbidden('You are not in this room');
    const probe = { type: THIRD_PARTY_INVITE, sender, content: {}, state_key: 'probe', room_id: roomId, prev_events: [] };
    const state = await currentStateEvents(this.store, roomId, authEventsSelection(probe.type, sender, probe.content, probe.state_key));
    try {
      authorize(probe, state, room.room_version as RoomVersionId);
    } catch (err) {
      if (err instanceof AuthError) throw forbidden(err.message);
      throw err;
    }
  }

  /** What store-invite is told of the room and the inviter, for its message to the invitee. */
  private async inviteDetails(sender: string, roomId: string, invite: ThreepidInvite): Promise<Record<string, string>> {
    const keys = ['m.room.create', 'm.room.name', 'm.room.canonical_alias', 'm.room.avatar', 'm.room.join_rules'].map((type) => stateKeyOf(type, ''));
    const state = await currentStateEvents(this.store, roomId, [...keys, stateKeyOf('m.room.member', sender)]);
    const field = (type: string, key: string, stateKey = '') => {
      const value = state.get(stateKeyOf(type, stateKey))?.content[key];
      return typeof value === 'string' ? value : undefined;
    };
    const details: Record<string, string | undefined> = {
      medium: invite.medium,
      address: invite.address,
      room_id: roomId,
      sender,
      room_alias: field('m.room.canonical_alias', 'alias'),
      room_avatar_url: field('m.room.avatar', 'url'),
      room_join_rules: field('m.room.join_rules', 'join_rule'),
      room_name: field('m.room.name', 'name'),
      room_type: field('m.room.create', 'type'),
      sender_display_name: field('m.room.member', 'displayname', sender),
      sender_avatar_url: field('m.room.member', 'avatar_url', sender),
    };
    return Object.fromEntries(Object.entries(details).filter((entry): entry is [string, string] => entry[1] !== undefined));
  }
}

function isSignedProof(value: unknown): value is SignedProof {
  return isObject(value) && typeof value.mxid === 'string' && typeof value.token === 'string' && isObject(value.signatures);
}

