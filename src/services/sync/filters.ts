import { isObject } from '../../validate.js';
import { z } from 'zod';
import { MatrixError, badJson, forbidden, notFound } from '../../errors.js';
import type { Store } from '../../storage/index.js';

const userIds = z.array(z.string().regex(/^@/, 'must be a user ID'));
const roomIds = z.array(z.string().regex(/^!/, 'must be a room ID'));

const eventFilter = z.object({
  limit: z.number().int().positive().optional(),
  not_senders: userIds.optional(),
  senders: userIds.optional(),
  not_types: z.array(z.string()).optional(),
  types: z.array(z.string()).optional(),
});

const roomEventFilter = eventFilter.extend({
  unread_thread_notifications: z.boolean().optional(),
  lazy_load_members: z.boolean().optional(),
  include_redundant_members: z.boolean().optional(),
  not_rooms: roomIds.optional(),
  rooms: roomIds.optional(),
  contains_url: z.boolean().optional(),
});

/** The spec's Filter object (sync_filter.yaml). Unknown keys are allowed, as in the spec's schema. */
const filterSchema = z.object({
  event_fields: z.array(z.string()).optional(),
  event_format: z.enum(['client', 'federation']).optional(),
  presence: eventFilter.optional(),
  account_data: eventFilter.optional(),
  room: z
    .object({
      not_rooms: roomIds.optional(),
      rooms: roomIds.optional(),
      ephemeral: roomEventFilter.optional(),
      include_leave: z.boolean().optional(),
      state: roomEventFilter.optional(),
      timeline: roomEventFilter.optional(),
      account_data: roomEventFilter.optional(),
    })
    .optional(),
});

export type EventFilter = z.infer<typeof eventFilter>;
export type Filter = z.infer<typeof filterSchema>;

/** Checks a filter against the spec's schema; M_BAD_JSON naming the first bad field otherwise. */
export function parseFilter(value: unknown): Filter {
  if (!isObject(value)) throw badJson('The filter must be a JSON object');
  const result = filterSchema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw badJson(`Invalid filter: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return result.data;
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
}

/** Applies an event filter's type and sender rules, then its limit. */
export function applyEventFilter<T extends { type: string; sender?: string }>(events: T[], filter: EventFilter | undefined): T[] {
  if (!filter) return events;
  const types = filter.types?.map(globToRegExp);
  const notTypes = filter.not_types?.map(globToRegExp);
  const kept = events.filter((e) => {
    if (notTypes?.some((r) => r.test(e.type))) return false;
    if (types && !types.some((r) => r.test(e.type))) return false;
    if (e.sender !== undefined && filter.not_senders?.includes(e.sender)) return false;
    if (e.sender !== undefined && filter.senders && !filter.senders.includes(e.sender)) return false;
    return true;
  });
  return filter.limit !== undefined ? kept.slice(0, filter.limit) : kept;
}

/** Stored sync filters. */
export class FilterService {
  constructor(private readonly store: Store) {}

  async create(requesterId: string, userId: string, body: unknown): Promise<string> {
    if (userId !== requesterId) throw forbidden('Cannot create filters for other users');
    parseFilter(body);
    const json = JSON.stringify(body);
    if (json.length > 65536) throw new MatrixError(400, 'M_TOO_LARGE', 'The filter is too large');
    const repo = this.store.filters;
    const same = await repo.findSame(userId, json);
    if (same !== undefined) return String(same);
    return String(await repo.create(userId, json));
  }

  async get(requesterId: string, userId: string, filterId: string): Promise<Record<string, unknown>> {
    if (userId !== requesterId) throw forbidden('Cannot read the filters of other users');
    const json = /^\d{1,15}$/.test(filterId) ? await this.store.filters.get(userId, Number(filterId)) : undefined;
    if (json === undefined) throw notFound('No such filter');
    return JSON.parse(json) as Record<string, unknown>;
  }

  /** The filter a /sync names: a stored filter's ID, or inline JSON starting with "{". */
  async resolve(userId: string, param: string | undefined): Promise<Filter | undefined> {
    if (param === undefined || param === '') return undefined;
    if (param.startsWith('{')) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(param);
      } catch {
        throw new MatrixError(400, 'M_NOT_JSON', 'The filter is not valid JSON');
      }
      return parseFilter(parsed);
    }
    return parseFilter(await this.get(userId, userId, param));
  }
}
