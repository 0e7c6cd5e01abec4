import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * Rooms: every event kept as the signed PDU federation will serve, its DAG edges, the state at each
 * event (state groups stored as deltas), the current state and memberships, aliases and the
 * transaction IDs of sends. Event positions are taken from the global stream, so sync reads room
 * events with the same `since` as everything else.
 */
export async function up(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('rooms')
    .addColumn('room_id', 'text', (c) => c.primaryKey())
    .addColumn('room_version', 'text', (c) => c.notNull())
    .addColumn('creator', 'text', (c) => c.notNull())
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .addColumn('is_public', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('state_group', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('depth', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('last_pos', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.createIndex('rooms_last_pos').on('rooms').column('last_pos').execute();

  await db.schema
    .createTable('events')
    .addColumn('event_id', 'text', (c) => c.primaryKey())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('stream_pos', 'bigint', (c) => c.notNull().unique())
    .addColumn('depth', 'bigint', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('state_key', 'text')
    .addColumn('sender', 'text', (c) => c.notNull())
    .addColumn('origin_server_ts', 'bigint', (c) => c.notNull())
    .addColumn('pdu', 'text', (c) => c.notNull())
    .addColumn('state_group', 'bigint', (c) => c.notNull())
    .addColumn('replaces_state', 'text')
    .addColumn('membership', 'text')
    .addColumn('history_visibility', 'text', (c) => c.notNull())
    .addColumn('redacted_by', 'text')
    .addColumn('outlier', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('soft_failed', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('rejection_reason', 'text')
    .execute();
  await db.schema.createIndex('events_room_stream').on('events').columns(['room_id', 'stream_pos']).execute();
  await db.schema.createIndex('events_room_depth').on('events').columns(['room_id', 'depth', 'stream_pos']).execute();

  await db.schema
    .createTable('event_edges')
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('prev_event_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('event_edges_pk', ['event_id', 'prev_event_id'])
    .execute();
  await db.schema.createIndex('event_edges_prev').on('event_edges').column('prev_event_id').execute();
  await db.schema
    .createTable('event_auth')
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('auth_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('event_auth_pk', ['event_id', 'auth_id'])
    .execute();
  await db.schema
    .createTable('forward_extremities')
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('forward_extremities_pk', ['room_id', 'event_id'])
    .execute();

  await db.schema
    .createTable('state_groups')
    .addColumn('id', 'bigint', (c) => c.primaryKey())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('prev_group', 'bigint')
    .addColumn('hops', 'integer', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('state_group_entries')
    .addColumn('state_group', 'bigint', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('state_key', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('state_group_entries_pk', ['state_group', 'type', 'state_key'])
    .execute();

  await db.schema
    .createTable('current_state')
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('state_key', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('current_state_pk', ['room_id', 'type', 'state_key'])
    .execute();

  await db.schema
    .createTable('room_members')
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('membership', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('stream_pos', 'bigint', (c) => c.notNull())
    .addColumn('sender', 'text', (c) => c.notNull())
    .addColumn('displayname', 'text')
    .addColumn('avatar_url', 'text')
    .addColumn('forgotten', 'integer', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('room_members_pk', ['room_id', 'user_id'])
    .execute();
  await db.schema.createIndex('room_members_user').on('room_members').columns(['user_id', 'membership']).execute();
  await db.schema.createIndex('room_members_user_pos').on('room_members').columns(['user_id', 'stream_pos']).execute();

  await db.schema
    .createTable('room_aliases')
    .addColumn('alias', 'text', (c) => c.primaryKey())
    .addColumn('room_id', 'text', (c) => c.notNull())
    .addColumn('creator', 'text', (c) => c.notNull())
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('room_aliases_room').on('room_aliases').column('room_id').execute();

  await db.schema
    .createTable('event_txns')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('txn_key', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('created_ts', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('event_txns_pk', ['user_id', 'device_id', 'txn_key'])
    .execute();
  await db.schema.createIndex('event_txns_event').on('event_txns').column('event_id').execute();
}

export async function down(db: AnyDb): Promise<void> {
  for (const table of ['event_txns', 'room_aliases', 'room_members', 'current_state', 'state_group_entries', 'state_groups', 'forward_extremities', 'event_auth', 'event_edges', 'events', 'rooms']) {
    await db.schema.dropTable(table).execute();
  }
}
