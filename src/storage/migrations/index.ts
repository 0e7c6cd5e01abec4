import type { Migration } from 'kysely';
import * as core from './0001_core.js';
import * as outbox from './0002_outbox.js';
import * as threepidSessions from './0003_threepid_sessions.js';
import * as clientState from './0005_client_state.js';
import * as refreshRotation from './0006_refresh_rotation.js';
import * as uiaMemory from './0007_uia_memory.js';
import * as presenceStream from './0008_presence_stream.js';
import * as globalStream from './0009_global_stream.js';
import * as rooms from './0010_rooms.js';
import * as threepidIdServers from './0011_threepid_id_servers.js';
import * as admin from './0012_admin.js';
import * as roomReadIndexes from './0013_room_read_indexes.js';
import * as media from './0014_media.js';
import * as receiptsTyping from './0015_receipts_typing.js';
import * as directories from './0016_directories.js';
import * as push from './0017_push.js';
import * as eventRelations from './0018_event_relations.js';
import * as pushSync from './0019_push_sync.js';
import * as eventSearch from './0020_event_search.js';
import * as reports from './0021_reports.js';
import * as emailNotifs from './0022_email_notifs.js';
import * as profilePropagation from './0023_profile_propagation.js';
import * as roomUpgrades from './0025_room_upgrades.js';
import * as erasedSenders from './0026_erased_senders.js';
import * as urlCacheMedia from './0027_url_cache_media.js';

/** Every migration, by name; names sort in the order they run. Add new ones at the end. */
export const migrations: Record<string, Migration> = {
  '0001_core': core,
  '0002_outbox': outbox,
  '0003_threepid_sessions': threepidSessions,
  '0005_client_state': clientState,
  '0006_refresh_rotation': refreshRotation,
  '0007_uia_memory': uiaMemory,
  '0008_presence_stream': presenceStream,
  '0009_global_stream': globalStream,
  '0010_rooms': rooms,
  '0011_threepid_id_servers': threepidIdServers,
  '0012_admin': admin,
  '0013_room_read_indexes': roomReadIndexes,
  '0014_media': media,
  '0015_receipts_typing': receiptsTyping,
  '0016_directories': directories,
  '0017_push': push,
  '0018_event_relations': eventRelations,
  '0019_push_sync': pushSync,
  '0020_event_search': eventSearch,
  '0021_reports': reports,
  '0022_email_notifs': emailNotifs,
  '0023_profile_propagation': profilePropagation,
  '0025_room_upgrades': roomUpgrades,
  '0026_erased_senders': erasedSenders,
  '0027_url_cache_media': urlCacheMedia,
};
