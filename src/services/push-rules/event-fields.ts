/**
 * The event side of push rule evaluation: an event's properties by the spec's dotted keys
 * (`content.m\.mentions.user_ids`), each looked up (and lower-cased) once per event however many
 * members' rules ask for it.
 */

/** Splits a dotted key at unescaped dots: `\.` is a literal dot, `\\` a literal backslash; any other backslash stands for itself. */
export function splitKey(key: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < key.length; i++) {
    const c = key[i]!;
    if (c === '\\' && (key[i + 1] === '.' || key[i + 1] === '\\')) {
      current += key[i + 1];
      i++;
    } else if (c === '.') {
      parts.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  parts.push(current);
  return parts;
}

const ABSENT = Symbol('absent');

/** The value at `path` in `root`, or undefined when some step is missing or not an object. */
export function valueAt(root: unknown, path: readonly string[]): unknown {
  let at: unknown = root;
  for (const step of path) {
    if (at === null || typeof at !== 'object' || Array.isArray(at) || !Object.hasOwn(at, step)) return undefined;
    at = (at as Record<string, unknown>)[step];
  }
  return at;
}

/** One event as push rules see it, with its lookups memoised by key. */
export class PushEventFields {
  private readonly values = new Map<string, unknown>();
  private readonly lowered = new Map<string, string | typeof ABSENT>();

  private results = new Uint8Array(0);

  constructor(readonly event: Record<string, unknown>) {}

  /** Per-event results of the evaluator's shared conditions, by condition id (0: not yet tested). */
  memo(size: number): Uint8Array {
    if (this.results.length < size) {
      const grown = new Uint8Array(Math.max(size, this.results.length * 2, 256));
      grown.set(this.results);
      this.results = grown;
    }
    return this.results;
  }

  /** The property at a dotted key (undefined when absent). */
  value(key: string): unknown {
    if (this.values.has(key)) return this.values.get(key);
    const value = valueAt(this.event, splitKey(key));
    this.values.set(key, value);
    return value;
  }

  /** The lower-cased string at a dotted key; undefined when absent or not a string. */
  lowerString(key: string): string | undefined {
    let lowered = this.lowered.get(key);
    if (lowered === undefined) {
      const value = this.value(key);
      lowered = typeof value === 'string' ? value.toLowerCase() : ABSENT;
      this.lowered.set(key, lowered);
    }
    return lowered === ABSENT ? undefined : lowered;
  }

  /** Whether the content has an `m.mentions` property: then the legacy mention rules do not apply. */
  get hasMentions(): boolean {
    const content = this.event.content;
    return content !== null && typeof content === 'object' && Object.hasOwn(content, 'm.mentions');
  }
}
