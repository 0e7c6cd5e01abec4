import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * Events of erased accounts (deactivated with `erase`) are served redacted to users who were not
 * joined when they were sent (the spec's account deactivation, Synapse's erasure). The flag sits on
 * the event, among the columns every read takes anyway, so serving needs no lookup of its own.
 */
export async function up(db: AnyDb): Promise<void> {
  await db.schema.alterTable('events').addColumn('sender_erased', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  await db
    .updateTable('events')
    .set({ sender_erased: 1 })
    .where('sender', 'in', db.selectFrom('users').select('user_id').where('erased', '=', 1))
    .execute();
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.alterTable('events').dropColumn('sender_erased').execute();
}
