import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import $RefParser from '@apidevtools/json-schema-ref-parser';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { parse as parseYaml } from 'yaml';
import { adminOperations } from './admin-openapi.js';

/**
 * Validates response bodies against the Matrix spec's OpenAPI definitions in ../shared/spec.
 * Every JSON body a test receives goes through `validateResponse`.
 */

const here = dirname(fileURLToPath(import.meta.url));
const API_SUBDIR = 'data/api/client-server';

/**
 * The spec's data lives in the shared/ folder beside the repository (as CI lays it out); a clone
 * elsewhere on a workstation can point MYELIN_SPEC_DIR at a matrix-spec checkout, or fall back to the
 * workplace's shared copy.
 */
function findSpecDir(): string {
  const candidates = [
    process.env.MYELIN_SPEC_DIR,
    join(here, '../../../shared/spec/matrix-spec'),
    '/work/shared/spec/matrix-spec',
  ].filter((c): c is string => Boolean(c));
  const found = candidates.find((c) => existsSync(join(c, API_SUBDIR)));
  if (!found) throw new Error(`Matrix spec data not found; looked in ${candidates.join(', ')} (set MYELIN_SPEC_DIR)`);
  return join(found, API_SUBDIR);
}

export const SPEC_DIR = findSpecDir();

interface Operation {
  method: string;
  regex: RegExp;
  template: string;
  /** Validators by status, compiled on first use: most of the spec's schemas are never needed in one test file. */
  responses: Map<string, () => ValidateFunction>;
}

const MATRIX_FORMATS: Record<string, RegExp> = {
  'mx-user-id': /^@[^:]+:.+$/,
  'mx-room-id': /^!.+$/,
  'mx-event-id': /^\$.+$/,
  'mx-room-alias': /^#[^:]+:.+$/,
  'mx-server-name': /^[A-Za-z0-9.:[\]-]+$/,
  'mx-mxc-uri': /^mxc:\/\/[^/]+\/.+$/,
  'mx-unpadded-base64': /^[A-Za-z0-9+/]*$/,
  'mx-urlsafe-unpadded-base64': /^[A-Za-z0-9_-]*$/,
};

let loaded: Promise<Operation[]> | undefined;

async function load(): Promise<Operation[]> {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  (addFormatsModule as unknown as (a: Ajv2020) => void)(ajv);
  for (const [name, regex] of Object.entries(MATRIX_FORMATS)) ajv.addFormat(name, regex);
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  ajv.addFormat('float', { type: 'number', validate: () => true });
  const operations: Operation[] = [];
  for (const file of readdirSync(SPEC_DIR).filter((f) => f.endsWith('.yaml'))) {
    const doc = (await $RefParser.dereference(join(SPEC_DIR, file), {
      dereference: { circular: 'ignore' },
      // The shared copy has no event-schemas/; what points there is left unconstrained.
      resolve: {
        file: {
          order: 1,
          canRead: true,
          read: (file: { url: string }) => {
            const path = decodeURIComponent(file.url.replace(/^file:\/\//, ''));
            return existsSync(path) ? readFileSync(path) : Buffer.from('{}');
          },
        },
      },
      // The spec's YAML has flow mappings that strict parsers reject; the yaml package reads them.
      parse: { yaml: { order: 1, canParse: /\.ya?ml$/i, parse: (file: { data: Buffer | string }) => parseYaml(file.data.toString(), { strict: false }) } },
    })) as {
      servers?: { variables?: { basePath?: { default?: string } } }[];
      paths?: Record<string, Record<string, { responses?: Record<string, { content?: Record<string, { schema?: object }> }> }>>;
    };
    const basePath = doc.servers?.[0]?.variables?.basePath?.default ?? '';
    for (const [path, methods] of Object.entries(doc.paths ?? {})) {
      const template = basePath + path;
      const regex = templateRegex(template);
      for (const [method, op] of Object.entries(methods)) {
        const responses = new Map<string, () => ValidateFunction>();
        for (const [status, response] of Object.entries(op.responses ?? {})) {
          const schema = response.content?.['application/json']?.schema;
          if (schema) responses.set(status, lazily(ajv, schema));
        }
        operations.push({ method: method.toUpperCase(), regex, template, responses });
      }
    }
  }
  return [...(await localOperations(ajv)), ...operations];
}

function templateRegex(template: string): RegExp {
  // A state key may be empty: clients send `/state/{type}/` (and Myelin also serves `/state/{type}`).
  const escaped = template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\/\{stateKey\}$/, '(?:/[^/]*)?');
  return new RegExp('^' + escaped.replace(/\{[^}]+\}/g, '[^/]+') + '$');
}

function lazily(ajv: Ajv2020, schema: object): () => ValidateFunction {
  let compiled: ValidateFunction | undefined;
  return () => (compiled ??= ajv.compile(schema));
}

function operation(ajv: Ajv2020, method: string, template: string, responses: Record<string, object>): Operation {
  return { method, regex: templateRegex(template), template, responses: new Map(Object.entries(responses).map(([status, schema]) => [status, lazily(ajv, schema)])) };
}

/**
 * Routes Myelin serves that the client-server spec lacks, with the shapes their own documentation
 * gives. They come first, so that a route here is never taken for a spec route it resembles.
 */
async function localOperations(ajv: Ajv2020): Promise<Operation[]> {
  // The spec's requestToken response: submit_url takes the identity service API's
  // POST /validate/{email,msisdn}/submitToken parameters, whose answer is {success}.
  const submitted = { type: 'object', properties: { success: { type: 'boolean' } }, required: ['success'] };
  // Synapse's shared-secret registration (docs/admin_api/register_api.md): GET gives a nonce, POST the new session.
  const nonce = { type: 'object', properties: { nonce: { type: 'string', minLength: 1 } }, required: ['nonce'] };
  const registered = {
    type: 'object',
    properties: { user_id: { type: 'string', format: 'mx-user-id' }, access_token: { type: 'string' }, device_id: { type: 'string' }, home_server: { type: 'string' } },
    required: ['user_id', 'access_token', 'device_id', 'home_server'],
  };
  // Synapse answers GET /pushrules/global/{kind}/ with that kind's list of rules.
  const pushRule = await $RefParser.dereference(join(SPEC_DIR, 'definitions/push_rule.yaml'), { parse: { yaml: { order: 1, canParse: /\.ya?ml$/i, parse: (file: { data: Buffer | string }) => parseYaml(file.data.toString(), { strict: false }) } } });
  const ops: Operation[] = [];
  for (const flow of ['registration', 'password_reset', 'add_threepid']) {
    for (const medium of ['email', 'msisdn']) ops.push(operation(ajv, 'POST', `/_matrix/client/unstable/${flow}/${medium}/submit_token`, { 200: submitted }));
    // The mailed link's pages are HTML; a JSON answer there can only be an error.
    for (const method of ['GET', 'POST']) ops.push(operation(ajv, method, `/_synapse/client/${flow}/email/submit_token`, {}));
  }
  ops.push(operation(ajv, 'GET', '/_synapse/admin/v1/register', { 200: nonce }));
  ops.push(operation(ajv, 'POST', '/_synapse/admin/v1/register', { 200: registered }));
  ops.push(operation(ajv, 'GET', '/_matrix/client/v3/pushrules/global/{kind}/', { 200: { type: 'array', items: pushRule } }));
  // GET /rooms/{roomId}/state/{eventType}/{stateKey} answers oneOf(an object, a state event), whose
  // schema is in event-schemas/ (absent here, so unconstrained): every answer matched both branches.
  ops.push(operation(ajv, 'GET', '/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}', { 200: { type: 'object' } }));
  // The server-server spec's Server Keys (data/api/server-server/definitions/keys.yaml), absent from the shared copy.
  const b64 = { type: 'string', format: 'mx-unpadded-base64' };
  const serverKeys = {
    type: 'object',
    properties: {
      server_name: { type: 'string', format: 'mx-server-name' },
      verify_keys: { type: 'object', additionalProperties: { type: 'object', properties: { key: b64 }, required: ['key'] } },
      old_verify_keys: { type: 'object', additionalProperties: { type: 'object', properties: { key: b64, expired_ts: { type: 'integer' } }, required: ['key', 'expired_ts'] } },
      signatures: { type: 'object', additionalProperties: { type: 'object', additionalProperties: b64 } },
      valid_until_ts: { type: 'integer' },
    },
    required: ['server_name', 'verify_keys', 'signatures', 'valid_until_ts'],
  };
  for (const path of ['/_matrix/key/v2/server', '/_matrix/key/v2/server/{keyId}']) ops.push(operation(ajv, 'GET', path, { 200: serverKeys }));
  for (const op of adminOperations()) ops.push(operation(ajv, op.method, op.template, op.responses));
  return ops;
}

/**
 * The spec's paths for a request path: r0 is served as v3 (client and media), and the few stable endpoints Myelin also
 * serves under /unstable (as Synapse does) are the v3 ones.
 */
function specPaths(path: string): string[] {
  const p = path
    .split('?')[0]!
    .replace(/^\/_matrix\/client\/r0\//, '/_matrix/client/v3/')
    .replace(/^\/_matrix\/media\/r0\//, '/_matrix/media/v3/');
  return p.startsWith('/_matrix/client/unstable/') ? [p, p.replace('/unstable/', '/v3/')] : [p];
}

/** The standard error body: an errcode, and an error message when there is one. */
function isMatrixError(body: unknown): boolean {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return false;
  const { errcode, error } = body as { errcode?: unknown; error?: unknown };
  return typeof errcode === 'string' && errcode !== '' && (error === undefined || typeof error === 'string');
}

export class SchemaError extends Error {}

/**
 * Checks a response body against the spec, or against the local schema of a route the spec lacks.
 * Returns the template it matched, or undefined for an error answer on an unknown path (e.g. a 404
 * for a path nobody serves). A 5xx fails, unless the test provokes one on purpose (`serverError`), and
 * then its body must still be a Matrix error.
 */
export async function validateResponse(method: string, path: string, status: number, body: unknown, expect: { serverError?: boolean } = {}): Promise<string | undefined> {
  loaded ??= load();
  const operations = await loaded;
  const body300 = JSON.stringify(body).slice(0, 300);
  if (status >= 500) {
    if (expect.serverError && isMatrixError(body)) return undefined;
    throw new SchemaError(`${method} ${path}: server error ${status} (body ${body300})`);
  }
  let op: Operation | undefined;
  for (const p of specPaths(path)) {
    const matches = operations.filter((o) => o.method === method && o.regex.test(p));
    // Prefer the most specific template: fewest parameters.
    matches.sort((a, b) => (a.template.match(/\{/g)?.length ?? 0) - (b.template.match(/\{/g)?.length ?? 0));
    op = matches[0];
    if (op) break;
  }
  if (!op) {
    if (status >= 400 && isMatrixError(body)) return undefined;
    throw new SchemaError(`${method} ${path} ${status}: neither the spec nor test/helpers/openapi.ts has a schema for this route (body ${body300})`);
  }
  const validate = (op.responses.get(String(status)) ?? op.responses.get(`${String(status)[0]}XX`))?.();
  if (!validate) {
    if (status >= 400 && isMatrixError(body)) return op.template;
    throw new SchemaError(`${method} ${op.template}: the spec defines no ${status} response (body ${body300})`);
  }
  if (!validate(body)) {
    throw new SchemaError(
      `${method} ${op.template} ${status}: body does not match the spec: ${JSON.stringify(validate.errors?.slice(0, 5))}\nbody: ${JSON.stringify(body).slice(0, 500)}`,
    );
  }
  return op.template;
}
