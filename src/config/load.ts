import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { configSchema, type Config } from './index.js';

export class ConfigError extends Error {}

/** The prefix of environment variables that override config keys, e.g. MYELIN__EMAIL__SMTP_PASS. */
export const ENV_PREFIX = 'MYELIN__';

/** Defaults used when Myelin runs without a config file: a local development server on SQLite. */
export function embeddedDefaults(): Record<string, unknown> {
  return {
    server_name: 'localhost',
    public_baseurl: 'http://127.0.0.1:8008/',
    listeners: [{ port: 8008, bind_addresses: ['127.0.0.1'] }],
    database: { name: 'sqlite3', args: { database: './data/homeserver.db' } },
    enable_registration: true,
    enable_registration_without_verification: true,
    // Development: mails and SMS are written to the log (link and code included) instead of sent.
    email: { notif_from: 'Myelin <noreply@localhost>', app_name: 'Myelin', transport: 'log' },
    sms: { provider: 'log' },
  };
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

/** Applies MYELIN__A__B=value variables onto the raw config; values are read as YAML scalars. */
export function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    const path = name.slice(ENV_PREFIX.length).toLowerCase().split('__').filter(Boolean);
    if (path.length === 0) continue;
    let parsed: unknown = value;
    try {
      parsed = parseYaml(value);
    } catch {
      parsed = value;
    }
    // Secrets are strings even when they look like numbers.
    if (typeof parsed !== 'object' && typeof parsed !== 'string' && /(secret|pass|password|token|key)$/.test(path.at(-1)!)) {
      parsed = value;
    }
    setPath(raw, path, parsed);
  }
}

function unwrap(schema: z.ZodType): z.ZodType {
  let current: z.ZodType = schema;
  for (;;) {
    const def = (current as unknown as { def: { type: string; innerType?: z.ZodType; in?: z.ZodType } }).def;
    if (def.innerType) current = def.innerType;
    else if (def.type === 'pipe' && def.in) current = def.in;
    else return current;
  }
}

/** Lists config keys that the schema does not know, as dotted paths. */
export function unknownKeys(schema: z.ZodType, value: unknown, path = ''): string[] {
  const inner = unwrap(schema);
  if (value === null || typeof value !== 'object') return [];
  if (inner instanceof z.ZodObject) {
    const shape = inner.shape as Record<string, z.ZodType>;
    const found: string[] = [];
    for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
      const sub = path ? `${path}.${key}` : key;
      if (!(key in shape)) found.push(sub);
      else found.push(...unknownKeys(shape[key]!, child, sub));
    }
    return found;
  }
  if (inner instanceof z.ZodArray && Array.isArray(value)) {
    return value.flatMap((item, i) => unknownKeys(inner.element as z.ZodType, item, `${path}[${i}]`));
  }
  if (inner instanceof z.ZodDiscriminatedUnion || inner instanceof z.ZodUnion) {
    const options = inner.options as z.ZodType[];
    const candidates = options.map((o) => unknownKeys(o, value, path));
    return candidates.reduce((best, c) => (c.length < best.length ? c : best), candidates[0] ?? []);
  }
  return [];
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const key = issue.path.length ? issue.path.map(String).join('.') : '(top level)';
  return `config key '${key}': ${issue.message}`;
}

export interface LoadedConfig {
  config: Config;
  warnings: string[];
}

/** Synapse settings an admin may bring across that Myelin has no use for, and why. */
const SYNAPSE_KEYS_LEFT_OUT: Record<string, string> = {
  account_threepid_delegates:
    'Myelin verifies email addresses itself (the email section) and phone numbers itself (the sms section), ' +
    'with no identity server; Synapse too stopped delegating email in 1.66',
  trust_identity_server_for_password_resets: 'removed in Synapse 1.66; password reset mails come from the email section',
};

/** Validates a raw config object (after env overrides) and returns the typed config. */
export function parseConfig(raw: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): LoadedConfig {
  const merged = structuredClone(raw);
  applyEnvOverrides(merged, env);
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map(describeIssue).join('\n'));
  }
  const warnings = unknownKeys(configSchema, merged).map((k) => (k in SYNAPSE_KEYS_LEFT_OUT ? `config key '${k}' is ignored: ${SYNAPSE_KEYS_LEFT_OUT[k]}` : `unknown config key '${k}' is ignored`));
  return { config: result.data, warnings };
}

/** Reads a YAML config file (or the embedded defaults when no path is given). */
export function loadConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  let raw: Record<string, unknown>;
  if (path) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (err) {
      throw new ConfigError(`config file ${path} is not valid YAML: ${(err as Error).message}`);
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
      throw new ConfigError(`config file ${path} must hold a YAML mapping`);
    }
    raw = doc as Record<string, unknown>;
  } else {
    raw = embeddedDefaults();
  }
  return parseConfig(raw, env);
}
